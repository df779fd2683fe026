"""The template routes over real HTTP: a small aiohttp app with the real error middleware, the route table's
template routes and PgTemplateStore on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from notify.adapters.clock import SystemClock
from notify.adapters.http.app import add_routes
from notify.adapters.http.auth import API_KEY
from notify.adapters.http.errors import error_middleware
from notify.adapters.http.routes import ROUTES
from notify.adapters.http.state import TEMPLATES
from notify.adapters.postgres.templates import PgTemplateStore
from notify.adapters.templates.inline import InlineTemplateEngine
from notify.app.templates import TemplateService
from notify.domain.keys import ApiKey

BASE = "/api/v1/templates"


@web.middleware
async def tenant_from_header(request: web.Request, handler: Any) -> web.StreamResponse:
    """Stands in for authentication: the caller's tenant comes from X-Tenant (tenant-a by default)."""
    now = datetime.now(UTC)
    tenant = request.headers.get("X-Tenant", "tenant-a")
    request[API_KEY] = ApiKey(uuid4(), tenant, "test", "ntf_test", "hash", now)
    response: web.StreamResponse = await handler(request)
    return response


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[error_middleware, tenant_from_header])
    app[TEMPLATES] = TemplateService(PgTemplateStore(pool), SystemClock(), InlineTemplateEngine())
    add_routes(app, (r for r in ROUTES if r.path.startswith(BASE)))  # the real table's template routes
    async with TestClient(TestServer(app)) as c:
        yield c


async def create(client: TestClient[web.Request, web.Application], **fields: Any) -> dict[str, Any]:
    body = {"name": "welcome", "channel": "sms", "body": "Hi {{ name }}"} | fields
    resp = await client.post(BASE, json=body)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{BASE}/{created['id']}"
    return created


async def test_create_read_replace_delete(client: TestClient[web.Request, web.Application]) -> None:
    created = await create(client, name="mail", channel="email", subject="Hello {{ name }}")
    assert {k: created[k] for k in ("name", "channel", "body", "subject")} == {
        "name": "mail",
        "channel": "email",
        "body": "Hi {{ name }}",
        "subject": "Hello {{ name }}",
    }
    assert created["created_at"].endswith("Z")

    resp = await client.get(f"{BASE}/{created['id']}")
    assert resp.status == 200
    assert await resp.json() == created

    resp = await client.put(f"{BASE}/{created['id']}", json={"name": "sms", "channel": "sms", "body": "Yo"})
    assert resp.status == 200
    replaced = await resp.json()
    assert (replaced["name"], replaced["channel"], replaced["body"], replaced["subject"]) == (
        "sms",
        "sms",
        "Yo",
        None,
    )

    resp = await client.delete(f"{BASE}/{created['id']}")
    assert resp.status == 204
    resp = await client.get(f"{BASE}/{created['id']}")
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"


async def test_a_syntax_error_is_a_400_naming_the_line(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post(BASE, json={"name": "x", "channel": "sms", "body": "Hello\n{{ name }"})
    assert resp.status == 400
    error = await resp.json()
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "body"
    assert error["details"][0]["code"] == "template_syntax"
    assert "line 2" in error["details"][0]["message"]


async def test_a_duplicate_name_is_a_409(client: TestClient[web.Request, web.Application]) -> None:
    await create(client)
    resp = await client.post(BASE, json={"name": "welcome", "channel": "push", "body": "Hey"})
    assert resp.status == 409
    error = await resp.json()
    assert error["code"] == "conflict"
    assert "welcome" in error["error"]
    # another tenant has its own names
    resp = await client.post(
        BASE, json={"name": "welcome", "channel": "sms", "body": "Hey"}, headers={"X-Tenant": "tenant-b"}
    )
    assert resp.status == 201


async def test_unknown_ids_and_bad_ids(client: TestClient[web.Request, web.Application]) -> None:
    for method in ("GET", "DELETE"):
        resp = await client.request(method, f"{BASE}/{uuid4()}")
        assert resp.status == 404
        resp = await client.request(method, f"{BASE}/not-a-uuid")
        assert resp.status == 400
        assert (await resp.json())["details"][0]["field"] == "id"
    resp = await client.put(f"{BASE}/{uuid4()}", json={"name": "x", "channel": "sms", "body": "Hi"})
    assert resp.status == 404


async def test_another_tenants_template_is_not_found(
    client: TestClient[web.Request, web.Application],
) -> None:
    created = await create(client)
    resp = await client.get(f"{BASE}/{created['id']}", headers={"X-Tenant": "tenant-b"})
    assert resp.status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "channel": "sms", "body": "Hi", "extra": 1}, "extra"),
        ({"name": "x", "channel": "fax", "body": "Hi"}, "channel"),
        ({"name": "x", "channel": "sms", "body": 5}, "body"),
        ({"name": "", "channel": "sms", "body": "Hi"}, "name"),
        ({"channel": "sms", "body": "Hi"}, "name"),
        ({"name": "x", "channel": "sms", "body": "Hi", "subject": "S"}, "subject"),
    ],
)
async def test_bad_bodies_are_400s(
    client: TestClient[web.Request, web.Application], body: dict[str, Any], field: str
) -> None:
    resp = await client.post(BASE, json=body)
    assert resp.status == 400
    error = await resp.json()
    assert [d["field"] for d in error["details"]] == [field]


async def test_empty_and_malformed_bodies_are_400s(client: TestClient[web.Request, web.Application]) -> None:
    for data in (b"", b"{not json"):
        resp = await client.post(BASE, data=data, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert (await resp.json())["details"][0]["field"] == "body"


async def test_list_pages_with_a_cursor(client: TestClient[web.Request, web.Application]) -> None:
    names = [(await create(client, name=f"t{i}"))["name"] for i in range(3)]
    resp = await client.get(BASE, params={"page_size": "2"})
    assert resp.status == 200
    page = await resp.json()
    assert len(page["data"]) == 2
    assert page["next_cursor"]
    resp = await client.get(BASE, params={"page_size": "2", "cursor": page["next_cursor"]})
    rest = await resp.json()
    assert rest["next_cursor"] is None
    assert sorted(t["name"] for t in page["data"] + rest["data"]) == sorted(names)

    for params in ({"page_size": "0"}, {"page_size": "101"}, {"cursor": "!!"}, {"sort": "name"}):
        resp = await client.get(BASE, params=params)
        assert resp.status == 400, params


async def test_a_read_has_an_etag_and_if_none_match_answers_304_until_it_changes(
    client: TestClient[web.Request, web.Application],
) -> None:
    created = await create(client, name="etag", channel="sms", body="v1 {{ x }}")
    first = await client.get(f"{BASE}/{created['id']}")
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"') and etag.endswith('"')
    unchanged = await client.get(f"{BASE}/{created['id']}", headers={"If-None-Match": etag})
    assert unchanged.status == 304 and unchanged.headers["ETag"] == etag and await unchanged.read() == b""
    replaced = await client.put(
        f"{BASE}/{created['id']}", json={"name": "etag", "channel": "sms", "body": "v2"}
    )
    assert replaced.status == 200
    changed = await client.get(f"{BASE}/{created['id']}", headers={"If-None-Match": etag})
    assert (
        changed.status == 200 and changed.headers["ETag"] != etag and (await changed.json())["body"] == "v2"
    )
