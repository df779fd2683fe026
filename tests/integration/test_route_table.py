"""The route table is what is served (serve.py), over a real socket: a handler reads the body and query its
entry documents, and answers only what its entry documents (status, model, headers), serialised through the
model. A handler that disagrees with its entry is a 500, never an undocumented answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict

from notify.adapters.http.app import add_routes
from notify.adapters.http.contract import LOCATION, Body, Operation, Reply, Route, Success
from notify.adapters.http.errors import error_middleware
from notify.adapters.http.inputs import body, query
from notify.adapters.http.responses import HealthOut


class ThingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str


class OtherIn(BaseModel):
    other: int = 0


class PageQuery(BaseModel):
    page_size: int = 20


def _operation(op_id: str, *success: Success, body_model: type[BaseModel] | None = None) -> Operation:
    return Operation(
        op_id,
        op_id,
        "test",
        success,
        frozenset(),
        body=Body(body_model, {}) if body_model else None,
        query=PageQuery,
    )


CREATED = Success(201, HealthOut, "made", {"status": "ok"}, (LOCATION,))
OK = Success(200, HealthOut, "ok", {"status": "ok"})


async def create(request: web.Request) -> Reply:
    assert body(request, ThingIn).name == "a"
    assert query(request, PageQuery).page_size == 5
    return Reply(HealthOut(status="ok"), 201, {LOCATION: "/things/1"})


async def reads_another_body(request: web.Request) -> Reply:
    body(request, OtherIn)
    return Reply(HealthOut(status="ok"), 201, {LOCATION: "/things/1"})


async def undocumented_status(request: web.Request) -> Reply:
    return Reply(HealthOut(status="ok"), 202)


async def missing_header(request: web.Request) -> Reply:
    return Reply(HealthOut(status="ok"), 201)


async def another_model(request: web.Request) -> Reply:
    return Reply(OtherIn(other=1))


ROUTES = [
    Route("POST", "/things", create, _operation("create", CREATED, body_model=ThingIn)),
    Route("POST", "/wrong-body", reads_another_body, _operation("wrongBody", CREATED, body_model=ThingIn)),
    Route("GET", "/undocumented-status", undocumented_status, _operation("status", OK)),
    Route("GET", "/missing-header", missing_header, _operation("header", CREATED)),
    Route("GET", "/another-model", another_model, _operation("model", OK)),
]


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[error_middleware])
    add_routes(app, ROUTES)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_a_documented_answer_is_sent_through_its_model(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.post("/things?page_size=5", json={"name": "a"}) as r:
        assert r.status == 201
        assert r.headers[LOCATION] == "/things/1"
        assert r.content_type == "application/json"
        assert await r.json() == {"status": "ok"}


async def test_the_entrys_models_read_the_input_so_bad_input_is_a_400_before_the_handler(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path, payload in [("/things", {"name": 1}), ("/things?page_size=x", {"name": "a"})]:
        async with client.post(path, json=payload) as r:
            assert r.status == 400, path
            assert (await r.json())["code"] == "validation_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/wrong-body"),  # reads another body model than its entry documents
        ("GET", "/undocumented-status"),
        ("GET", "/missing-header"),  # the documented Location is missing
        ("GET", "/another-model"),
    ],
)
async def test_a_handler_disagreeing_with_its_entry_is_a_500_not_an_undocumented_answer(
    client: TestClient[web.Request, web.Application], method: str, path: str
) -> None:
    async with client.request(method, path, json={"name": "a"}) as r:
        assert r.status == 500
        assert (await r.json())["code"] == "internal_error"
