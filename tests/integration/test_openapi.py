"""The OpenAPI document against the real router, the real validator and the answers as they are sent; and
Swagger UI served from packaged assets only.

The API's cleanup context (database, Kafka) never runs here: the document needs the router, not the services.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from uuid import UUID

import jsonschema  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel

import notify
from notify.adapters.http import openapi
from notify.adapters.http.app import create_app
from notify.adapters.http.contract import ERROR_RESPONSES, Reply
from notify.adapters.http.errors import ERROR_STATUS, error_middleware, error_response
from notify.adapters.http.responses import (
    AttemptListOut,
    BatchCreatedOut,
    BatchOut,
    BatchSummaryOut,
    DeliveryStateOut,
    MetricsOut,
    NotificationOut,
    PageOut,
    TemplateOut,
    TemplatePageOut,
)
from notify.adapters.http.routes import ROUTES
from notify.adapters.http.serve import send
from notify.app.operations import DeliveryState
from notify.app.stats import ChannelMetrics, Metrics
from notify.bootstrap import build_api_app
from notify.domain.delivery import AttemptOutcome, AttemptRecord
from notify.domain.errors import (
    FieldError,
    Forbidden,
    IllegalTransition,
    NotFound,
    NotifyError,
    Overloaded,
    PermanentProviderError,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.pauses import PauseState
from notify.domain.queries import Page
from notify.domain.templates import Template
from notify.settings import load_settings

REF = "#/components/schemas/{model}"

# What serve.py reads each route's body and query with: the route table's own entries.
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    (r.method.lower(), r.path): r.operation.body.model for r in ROUTES if r.operation.body is not None
}
QUERIES: dict[tuple[str, str], type[BaseModel]] = {
    (r.method.lower(), r.path): r.operation.query for r in ROUTES if r.operation.query is not None
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def with_docs(app: web.Application) -> web.Application:
    """Registers the docs routes unless create_app already does (they must not be added twice)."""
    if not any(
        r.resource is not None and r.resource.canonical == openapi.OPENAPI_PATH for r in app.router.routes()
    ):
        openapi.add_docs_routes(app)
    return app


@pytest.fixture(scope="module")
def api_app() -> web.Application:
    return with_docs(build_api_app(load_settings()))


@pytest.fixture(scope="module")
def document(api_app: web.Application) -> dict[str, Any]:
    return openapi.build_openapi(api_app)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield method, path, op


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # The components ride along at the root, so "#/components/schemas/X" resolves within this one schema.
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def assert_valid(document: dict[str, Any], component: str, instance: Any) -> None:
    validator = schema_validator(document, {"$ref": f"#/components/schemas/{component}"})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == [], f"{component}: {errors}"


# --- the document -------------------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "notify"
    assert document["info"]["version"] == notify.__version__
    assert document["servers"] == [{"url": "/"}]
    validate(document, cls=OpenAPIV31SpecValidator)
    validate(document)  # and the validator's own detection agrees it is 3.1


def test_every_route_is_documented_and_every_documented_route_exists(
    api_app: web.Application, document: dict[str, Any]
) -> None:
    assert openapi.undocumented_routes(api_app) == []
    assert {(r.method, r.path) for r in ROUTES} == openapi.routed(api_app)  # canonical paths agree
    in_document = {(m.upper(), p) for m, p, _ in operations(document)}
    assert in_document == openapi.routed(api_app)
    assert ("GET", "/health/ready") in in_document  # the comparison is not vacuous


def test_every_api_operation_needs_the_key_and_health_does_not(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for method, path, op in operations(document):
        # /ws is outside /api/v1 (DESIGN.md §4) but streams a tenant's events: it takes the key too.
        keyed = path.startswith("/api/v1/") or path == "/ws"
        expected: list[dict[str, list[str]]] = [{"bearerAuth": []}] if keyed else []
        assert op["security"] == expected, (method, path)
        if path.startswith("/api/v1/"):
            assert {"401", "429"} <= set(op["responses"]), (method, path)
            too_many = resolve(document, op["responses"]["429"])
            assert too_many["headers"]["Retry-After"]["$ref"].endswith("/Retry-After")
            assert resolve(document, too_many["headers"]["Retry-After"])["required"] is True


def test_every_operation_has_a_success_with_a_schema_and_an_example(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2") or s == "101"}
        assert successes, (method, path)
        if set(successes) <= {"204", "101"}:  # DELETE, WebSocket upgrade: no body to show
            assert not any("content" in r for r in successes.values()), (method, path)
            continue
        for status, response in successes.items():
            content = resolve(document, response)["content"]
            if "text/plain" in content:  # Prometheus exposition format
                assert content["text/plain"]["schema"] == {"type": "string"}, (method, path)
                assert content["text/plain"]["example"].startswith("# HELP"), (method, path)
                continue
            if "text/event-stream" in content:  # Server-Sent Events
                assert content["text/event-stream"]["example"].startswith("id: "), (method, path)
                continue
            media = content["application/json"]
            assert "$ref" in media["schema"], (method, path, status)
            assert media.get("examples") or "example" in media, (method, path, status)
        for status, response in op["responses"].items():
            if status[0] in "45":
                media = resolve(document, response)["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)


def test_documented_errors_follow_what_each_route_can_answer(document: dict[str, Any]) -> None:
    statuses = {(m, p): set(op["responses"]) for m, p, op in operations(document)}
    for key in BODIES:  # a body is read: malformed JSON (400) and oversized bodies (413)
        assert {"400", "413"} <= statuses[key], key
    for (method, path), found in statuses.items():
        if "{id}" in path:
            assert {"400", "404"} <= found, (method, path)  # not a UUID / not found
    for key in [("post", "/api/v1/notifications"), ("post", "/api/v1/notifications/batch")]:
        assert "409" in statuses[key]  # an idempotency key reused with another payload
        parameters = [resolve(document, p) for p in document["paths"][key[1]][key[0]]["parameters"]]
        headers = {p["name"] for p in parameters if p["in"] == "header"}
        assert {"Idempotency-Key", "X-Correlation-ID"} <= headers, key
    assert "503" in statuses[("get", "/health/ready")]
    bad_request = document["components"]["responses"]["BadRequest"]["content"]["application/json"]["examples"]
    assert any(e["value"]["details"][0]["code"] == "invalid_json" for e in bad_request.values())


def test_request_bodies_and_queries_are_generated_from_the_route_tables_models(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    bodies = {(m, p): op["requestBody"] for m, p, op in operations(document) if "requestBody" in op}
    assert set(bodies) == set(BODIES)
    assert len(BODIES) == 12 and len(QUERIES) == 11  # every body and query the API reads is in the table
    for key, model in BODIES.items():
        media = bodies[key]["content"]["application/json"]
        assert media["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}, key
        generated = model.model_json_schema(mode="validation", ref_template=REF)
        defs = generated.pop("$defs", {})
        assert schemas[model.__name__] == generated, key
        for name, schema in defs.items():
            assert schemas[name] == schema, (key, name)
    # Bodies that may be left out (every field has a default) are optional, the others required.
    assert bodies[("post", "/api/v1/notifications")]["required"] is True
    assert bodies[("post", "/api/v1/delivery/pause")]["required"] is False

    for (method, path), model in QUERIES.items():
        op = document["paths"][path][method]
        query = {p["name"]: p for p in op["parameters"] if p.get("in") == "query"}
        assert list(query) == list(model.model_fields), (method, path)
        fields = model.model_json_schema(mode="validation", ref_template=REF)["properties"]
        for name, field in fields.items():  # the bounds the model checks are the ones documented
            # An optional field's bounds are on its non-null branch.
            field = next((b for b in field.get("anyOf", []) if b.get("type") != "null"), field)
            for bound in ("minimum", "maximum"):
                assert query[name]["schema"].get(bound) == field.get(bound), (method, path, name, bound)
        if "page_size" in fields:
            assert query["page_size"]["schema"]["maximum"] == 100
    metrics_window = document["paths"]["/api/v1/metrics"]["get"]["parameters"][0]
    assert (metrics_window["name"], metrics_window["schema"]["minimum"]) == ("window_s", 60)
    assert metrics_window["schema"]["maximum"] == 7 * 86400
    for method, path, op in operations(document):
        if (method, path) not in QUERIES:
            assert not [p for p in op["parameters"] if p.get("in") == "query"], (method, path)


def test_every_example_matches_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for method, path, op in operations(document):
        media_types = []
        if "requestBody" in op:
            media_types.append(op["requestBody"]["content"]["application/json"])
        responses = [resolve(document, r) for r in op["responses"].values()]
        media_types += [
            r["content"]["application/json"]
            for r in responses
            if "content" in r and "application/json" in r["content"]
        ]
        for media in media_types:
            validator = schema_validator(document, media["schema"])
            for name, example in media["examples"].items():
                errors = [e.message for e in validator.iter_errors(example["value"])]
                assert errors == [], (method, path, name, errors)
                checked += 1
        if (method, path) in BODIES:  # and the handler's model accepts every request example
            for example in op["requestBody"]["content"]["application/json"]["examples"].values():
                BODIES[(method, path)].model_validate_json(json.dumps(example["value"]))
        for param in op["parameters"]:
            param = resolve(document, param)
            if "example" in param:
                assert list(schema_validator(document, param["schema"]).iter_errors(param["example"])) == []
    assert checked > 30


# --- the answers as sent against the document ---------------------------------------------------------------


def sent(answer: BaseModel) -> Any:
    """``answer`` as the API sends it (serve.send), parsed back."""
    response = send(Reply(answer))
    assert isinstance(response.body, bytes)
    return json.loads(response.body)


NOW = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)


def a_notification(channel: Channel, **fields: Any) -> Notification:
    base: dict[str, Any] = {
        "id": UUID("01943a6e-5b1c-7d2e-9f30-4a5b6c7d8e9f"),
        "tenant_id": "t",
        "channel": channel,
        "recipient": "+14155550123",
        "content": "héllo €",
        "priority": Priority.NORMAL,
        "status": Status.PENDING,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Notification(**(base | fields))


def test_answers_as_sent_match_the_document(document: dict[str, Any]) -> None:
    minimal = a_notification(Channel.PUSH, recipient="tok")
    full = a_notification(
        Channel.SMS,
        subject=None,
        batch_id=UUID("01943a6e-5b1c-7a00-8b11-223344556677"),
        scheduled_at=NOW,
        expires_at=NOW + timedelta(days=1),
        idempotency_key="k",
        template_id=UUID("01943a6e-5b1c-7a00-8b11-223344556678"),
        template_variables={"name": "Ada"},
        metadata={"a": [1, {"b": None}]},
        attempts=2,
        max_retries=3,
        provider="primary",
        provider_message_id="m-1",
        error_message="boom",
        sent_at=NOW,
        failed_at=NOW,
        next_attempt_at=NOW,
        status=Status.FAILED,
    )
    email = a_notification(Channel.EMAIL, recipient="ada@example.com", subject="Hi")
    for n in (minimal, full, email):
        assert_valid(document, "NotificationOut", sent(NotificationOut.of(n)))
    assert_valid(document, "PageOut", sent(PageOut.of(Page([minimal, full], full.id))))
    assert_valid(document, "PageOut", sent(PageOut.of(Page([], None))))

    batch = Batch(id=UUID("01943a6e-5b1c-7a00-8b11-223344556677"), tenant_id="t", total=2, created_at=NOW)
    assert_valid(document, "BatchSummaryOut", sent(BatchSummaryOut.of(batch)))
    assert_valid(document, "BatchOut", sent(BatchOut.counted(batch, {Status.DELIVERED: 2})))
    every = {s: i + 1 for i, s in enumerate(Status)}  # a different count for each status
    full_batch = sent(BatchOut.counted(replace(batch, total=sum(every.values())), every))
    assert_valid(document, "BatchOut", full_batch)
    seed = ("pending_count", "delivered_count", "failed_count", "cancelled_count")
    assert sum(full_batch[k] for k in seed) == full_batch["total_count"] == full_batch["total"]
    assert full_batch["failed_count"] == every[Status.FAILED] + every[Status.EXPIRED]
    assert_valid(document, "BatchCreatedOut", sent(BatchCreatedOut.of(batch, [full])))

    for outcome, status, message in [
        (AttemptOutcome.DELIVERED, 200, None),
        (AttemptOutcome.TRANSIENT, None, "t/o"),
    ]:
        record = AttemptRecord(
            1, "primary", NOW, NOW + timedelta(milliseconds=12.3456), outcome, status, message
        )
        assert_valid(document, "AttemptListOut", sent(AttemptListOut.of([record])))

    nothing = PauseState("*", False, frozenset())
    for state in (
        DeliveryState("acme", nothing, PauseState("acme", False, frozenset())),
        DeliveryState(
            "acme", PauseState("*", True, frozenset()), PauseState("acme", False, frozenset({Channel.SMS}))
        ),
    ):
        assert_valid(document, "DeliveryStateOut", sent(DeliveryStateOut.of(state)))

    template = Template(UUID(int=1), "t", "welcome", Channel.EMAIL, "Hi {{ name }}", None, NOW, NOW)
    assert_valid(document, "TemplateOut", sent(TemplateOut.of(template)))
    assert_valid(document, "TemplatePageOut", sent(TemplatePageOut.of([template], None)))

    busy = ChannelMetrics(12, 1, 183.25, 512.5, 12 / 13, 4)
    idle = ChannelMetrics(0, 0, None, None, None, 0)
    failing = ChannelMetrics(0, 2, None, None, 0.0, 9)
    metrics = Metrics(3600, NOW, {Channel.SMS: busy, Channel.EMAIL: idle, Channel.PUSH: failing})
    assert_valid(document, "MetricsOut", sent(MetricsOut.of(metrics)))

    error = error_response(
        400, "validation_error", "Invalid input: x.", [{"field": "x", "message": "m", "code": "c"}]
    )
    assert error.text is not None
    assert_valid(document, "ErrorOut", json.loads(error.text))


def test_response_models_reject_what_the_handlers_never_send(document: dict[str, Any]) -> None:
    body = sent(NotificationOut.of(a_notification(Channel.PUSH, recipient="tok")))
    for broken in ({**body, "surprise": 1}, {k: v for k, v in body.items() if k != "batch_id"}):
        validator = schema_validator(document, {"$ref": "#/components/schemas/NotificationOut"})
        assert list(validator.iter_errors(broken)), broken


# --- serving: /openapi.json and Swagger UI without any CDN --------------------------------------------------


class AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append(value)


async def _no_services(app: web.Application) -> AsyncIterator[None]:
    yield  # the docs routes need no database, broker or API key


@pytest.fixture
async def docs_client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = with_docs(create_app(1024 * 1024, _no_services))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_openapi_json_is_served_without_a_key(
    docs_client: TestClient[web.Request, web.Application],
) -> None:
    async with docs_client.get("/openapi.json") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        served = await r.json()
    assert served == json.loads(json.dumps(openapi.build_openapi(docs_client.app)))
    validate(served)
    async with docs_client.get("/openapi.json") as r:  # cached, and still the same
        assert await r.json() == served


async def test_swagger_ui_is_served_from_this_origin_only(
    docs_client: TestClient[web.Request, web.Application],
) -> None:
    async with docs_client.get("/docs") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        html = await r.text()
    assert "http://" not in html and "https://" not in html
    parser = AssetLinks()
    parser.feed(html)
    assert len(parser.links) >= 3
    for link in parser.links:
        assert link.startswith("/") and not link.startswith("//"), link  # same origin
        async with docs_client.get(link) as r:
            assert r.status == 200, link
            body = await r.read()
            assert body, link
        if link.endswith(".js") and "swagger-ui" not in link:  # our initializer
            text = body.decode()
            assert "http://" not in text and "https://" not in text
            assert '"/openapi.json"' in text and "validatorUrl: null" in text


def test_the_packaged_swagger_ui_renders_openapi_3_1() -> None:
    # OpenAPI 3.1 rendering arrived in Swagger UI 5.
    directory = openapi.swagger_ui_dir()
    assert directory.name.startswith("swagger-ui-5.")
    assert (directory / "swagger-ui-bundle.js").stat().st_size > 100_000


async def test_docs_routes_stay_outside_the_api_prefix(
    docs_client: TestClient[web.Request, web.Application],
) -> None:
    docs = {r.resource.canonical for r in docs_client.app.router.routes() if r.resource is not None}
    docs = {p for p in docs if p.startswith("/docs") or p == "/openapi.json"}
    assert docs and not any(p.startswith("/api/") for p in docs)


@pytest.mark.parametrize(
    ("error", "status", "header"),
    [
        (ValidationFailed.for_fields([FieldError("recipient", "is wrong", "invalid")]), 400, None),
        (Unauthorized("no key"), 401, "WWW-Authenticate"),
        (Forbidden("not yours"), 403, None),
        (NotFound("nothing"), 404, None),
        (IllegalTransition("delivered", "cancelled"), 409, None),
        (RateLimited("slow down", retry_after_s=2.5), 429, "Retry-After"),
        (Overloaded("busy"), 503, "Retry-After"),
        (PermanentProviderError("a provider error escaping to the API is a bug"), 500, None),
    ],
)
async def test_each_domain_error_is_answered_with_its_status_in_the_documented_shape(
    document: dict[str, Any], error: NotifyError, status: int, header: str | None
) -> None:
    async def failing(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/fail", failing)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/fail")
        assert response.status == status
        body = await response.json()
    assert_valid(document, "ErrorOut", body)
    assert status == 500 or status == ERROR_STATUS[next(k for k in ERROR_STATUS if isinstance(error, k))]
    if header is not None:
        assert response.headers[header]
    documented = {e.status for e in ERROR_RESPONSES.values()}
    assert status == 500 or status in documented  # every status the table answers is a documented answer
