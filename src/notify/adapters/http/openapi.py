"""The OpenAPI 3.1 document of the HTTP API, built from the route table (``routes.py``), and Swagger UI to
read it.

Request bodies and query parameters come from the very pydantic models the handlers validate with
(``schemas.py``); answers from the models of ``responses.py``. Swagger UI is served from the copy packaged in
``swagger-ui-bundle-v2`` (Swagger UI 5, the first major version that renders OpenAPI 3.1): ``/docs`` loads
nothing from any other origin.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import notify
from notify.adapters.http.callbacks import CALLBACKS_PREFIX
from notify.adapters.http.console.pages import PREFIX as CONSOLE_PREFIX
from notify.adapters.http.contract import ERROR_RESPONSES, ETAG, LOCATION, REPLAYED, Operation
from notify.adapters.http.examples import BATCH_ID, NOTIFICATION_ID, TEMPLATE_ID, WEBHOOK_ID
from notify.adapters.http.responses import ErrorOut
from notify.adapters.http.routes import ROUTES

log = logging.getLogger(__name__)

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_INIT_PATH = "/docs/init.js"
DOCS_STATIC_PREFIX = "/docs/static"


# --- shared components --------------------------------------------------------------------------------------

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Correlation-ID": {
        "description": "The request's correlation id (the caller's when it was acceptable), as logged.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:/=+-]{1,128}$"},
    },
    LOCATION: {
        "description": "Where the created object can be read.",
        "required": True,
        "schema": {"type": "string"},
    },
    REPLAYED: {
        "description": "Present on an idempotent replay.",
        "required": True,
        "schema": {"type": "string", "const": "true"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Limit": {
        "description": "Requests per second this API key may make (on a 429 for the key's rate).",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current second: 0 on a 429.",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until a request is admitted again.",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
    },
    ETAG: {
        "description": "The answer's version: send it in If-None-Match to get a 304 while it is unchanged.",
        "required": True,
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme expected.",
        "required": True,
        "schema": {"type": "string", "const": "Bearer"},
    },
}

_PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Makes the request safe to retry: the same key with the same payload returns the original answer "
            "(200, `Idempotent-Replayed: true`); with a different payload it is a 409. Unique per API key "
            "for as long as the notification exists."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "example": "order-1234-otp",
    },
    "CorrelationId": {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": False,
        "description": (
            "Carried into the logs and the delivery events. A value that does not match "
            "`^[A-Za-z0-9._:/=+-]{1,128}$` is not an error: it is replaced by a fresh id."
        ),
        # Any string is accepted (a bad one is replaced), so the schema does not claim the pattern.
        "schema": {"type": "string"},
        "example": "checkout-7f3a9c",
    },
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


# --- building the document ----------------------------------------------------------------------------------


def _without_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``X | None`` minus its null branch: an absent query parameter is how a client says None."""
    out = {k: v for k, v in schema.items() if k not in ("title",)}
    branches = out.get("anyOf")
    if isinstance(branches, list):
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(branches):
            del out["anyOf"]
            out = {**rest[0], **out}
    if out.get("default", ...) is None:
        del out["default"]
    return out


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters a ``*Params`` model validates, one per field, with that field's schema."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    required = set(schema.get("required", ()))
    params: list[dict[str, Any]] = []
    for name, prop in schema["properties"].items():
        param_schema = _without_null(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in param_schema:
            param["description"] = param_schema.pop("description")
        param["schema"] = param_schema
        params.append(param)
    return params


def _merge_schemas(into: dict[str, Any], defs: Mapping[str, Any]) -> None:
    for name, schema in defs.items():
        if name in into and into[name] != schema:
            # Two models of the same name would silently shadow each other in components.
            raise ValueError(f"two different schemas are both named {name!r}")
        into[name] = schema


def _component_schemas(
    ops: Collection[Operation],
) -> tuple[dict[str, Any], dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]]:
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in ops:
        if op.body is not None:
            inputs.append((op.body.model, "validation"))
        inputs += [(s.model, "serialization") for s in op.success if s.model is not None]
    inputs.append((ErrorOut, "serialization"))
    unique = list(dict.fromkeys(inputs))
    refs, top = models_json_schema(unique, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for op in ops:
        if op.query is not None:
            # Query models are not components themselves (their fields become parameters), but the enums
            # their fields refer to must be.
            defs = op.query.model_json_schema(mode="validation", ref_template=REF_TEMPLATE).get("$defs", {})
            _merge_schemas(schemas, defs)
    return dict(sorted(schemas.items())), {key: refs[key] for key in unique}


def _json_content(schema: Mapping[str, Any], examples: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "application/json": {
            "schema": dict(schema),
            "examples": {name: {"value": value} for name, value in examples.items()},
        }
    }


_PATH_EXAMPLES = {
    "notification id": NOTIFICATION_ID,
    "batch id": BATCH_ID,
    "template id": TEMPLATE_ID,
    "webhook id": WEBHOOK_ID,
}


def _operation_object(
    op: Operation,
    refs: Mapping[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
) -> dict[str, Any]:
    obj: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        obj["description"] = op.description
    params: list[dict[str, Any]] = []
    if op.path_id is not None:
        params.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "description": f"The {op.path_id} (a UUID; anything else is a 400).",
                "schema": {"type": "string", "format": "uuid"},
                "example": _PATH_EXAMPLES[op.path_id],
            }
        )
    if op.query is not None:
        params += query_parameters(op.query)
    if op.idempotency_header:
        params.append(_ref("parameters", "IdempotencyKey"))
    params.append(_ref("parameters", "CorrelationId"))
    obj["parameters"] = params
    if op.body is not None:
        obj["requestBody"] = {
            "required": op.body.required,
            "content": _json_content(refs[(op.body.model, "validation")], op.body.examples),
        }
        if op.body.description:
            obj["requestBody"]["description"] = op.body.description
    responses: dict[str, Any] = {}
    for success in op.success:
        headers = {"X-Correlation-ID": _ref("headers", "X-Correlation-ID")}
        headers |= {h: _ref("headers", h) for h in success.headers}
        responses[str(success.status)] = {"description": success.description, "headers": headers}
        if success.model is not None:
            responses[str(success.status)]["content"] = _json_content(
                refs[(success.model, "serialization")], {"example": success.example}
            )
        elif success.content is not None:
            responses[str(success.status)]["content"] = dict(success.content)
        if ETAG in success.headers:
            responses["304"] = {
                "description": "Not modified: the ETag sent in If-None-Match is still current.",
                "headers": {ETAG: _ref("headers", ETAG)},
            }
    for name in op.errors:
        status = str(ERROR_RESPONSES[name].status)
        if status in responses:
            raise ValueError(f"{op.operation_id}: two answers for status {status}")
        responses[status] = _ref("responses", name)
    obj["responses"] = dict(sorted(responses.items()))
    obj["security"] = [] if op.open else [{"bearerAuth": []}]
    return obj


def _components(schemas: dict[str, Any]) -> dict[str, Any]:
    error_ref = _ref("schemas", "ErrorOut")
    responses = {}
    for name, error in ERROR_RESPONSES.items():
        headers = {"X-Correlation-ID": _ref("headers", "X-Correlation-ID")}
        headers |= {h: _ref("headers", h) for h in error.headers}
        responses[name] = {
            "description": error.description,
            "headers": headers,
            "content": _json_content(error_ref, error.examples),
        }
    return {
        "schemas": schemas,
        "responses": responses,
        "parameters": copy.deepcopy(_PARAMETERS),
        "headers": copy.deepcopy(_HEADERS),
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (see `notify keys --help`) sent as `Authorization: Bearer <key>`.",
            }
        },
    }


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``app``'s API (``app`` is only checked for routes left undocumented)."""
    schemas, refs = _component_schemas([r.operation for r in ROUTES])
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation_object(route.operation, refs)
    missing = undocumented_routes(app)
    if missing:
        # Only a route added to the router outside the table can be missing; the tests fail on it.
        log.warning("routes missing from the OpenAPI document", extra={"routes": missing})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notify",
            "version": notify.__version__,
            "summary": "Self-hosted notification backend: SMS, email and push.",
            "description": (
                "Every `/api/v1` route needs `Authorization: Bearer <key>`. Every error has one shape: "
                '`{"error": "<sentence>", "code": "<machine_code>", "details": [...]}`, each detail naming '
                "a failing `field` with its `message` and `code`. Timestamps are RFC 3339 in UTC."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "notifications", "description": "Create, read, list, cancel and replay notifications."},
            {
                "name": "batches",
                "description": "Up to 1000 notifications accepted all together or not at all.",
            },
            {
                "name": "templates",
                "description": "Reusable contents, rendered when a notification names one.",
            },
            {"name": "operations", "description": "Dead letters, pausing delivery, and delivery metrics."},
            {
                "name": "webhooks",
                "description": "Signed status callbacks (Standard Webhooks), as durable as notifications.",
            },
            {"name": "health", "description": "Liveness and readiness; no API key needed."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": _components(schemas),
    }


# --- router vs. table (the router is built from the table: only a route added around it can differ) ---


def _outside_the_api(path: str) -> bool:
    """The documentation's own routes, the provider callbacks (their shape is the provider's, documented in
    docs/providers.md, not the client API's) and the console's pages (HTML for a browser: docs/console.md)."""
    return _is_docs_route(path) or path.startswith((CALLBACKS_PREFIX, CONSOLE_PREFIX))


def _is_docs_route(path: str) -> bool:
    return path in (OPENAPI_PATH, DOCS_PATH, DOCS_INIT_PATH) or path.startswith(DOCS_STATIC_PREFIX)


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(method, canonical path) of every route of ``app`` except HEAD (aiohttp adds it to each GET), the
    documentation's own routes and the provider callbacks."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None or _outside_the_api(route.resource.canonical):
            continue
        out.add((route.method, route.resource.canonical))
    return out


def undocumented_routes(app: web.Application) -> list[str]:
    """Routes of ``app`` that are not in the table (added to the router some other way)."""
    documented = {(r.method, r.path) for r in ROUTES}
    return sorted(f"{m} {p}" for m, p in routed(app) - documented)


# --- serving ------------------------------------------------------------------------------------------------

_DOCS_HTML = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>notify API</title>
<link rel="stylesheet" type="text/css" href="{DOCS_STATIC_PREFIX}/swagger-ui.css">
<link rel="stylesheet" type="text/css" href="{DOCS_STATIC_PREFIX}/index.css">
<link rel="icon" type="image/png" href="{DOCS_STATIC_PREFIX}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_STATIC_PREFIX}/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="{DOCS_INIT_PATH}" charset="UTF-8"></script>
</body>
</html>
"""

# validatorUrl: null, because Swagger UI's default posts the document to an online validator.
_DOCS_INIT_JS = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}};
"""

# Only this origin: a stray CDN reference would not load, and the tests would see the page break.
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
)


def swagger_ui_dir() -> Path:
    """The Swagger UI 5.x assets shipped in the ``swagger-ui-bundle-v2`` package."""
    vendor = Path(str(importlib.resources.files("swagger_ui_bundle"))) / "vendor"
    found = sorted(vendor.glob("swagger-ui-5.*"))
    if not found or not (found[-1] / "swagger-ui-bundle.js").is_file():
        # swagger-ui-bundle (without -v2) installs the same module with Swagger UI 4, which cannot render 3.1.
        raise RuntimeError(f"Swagger UI 5 assets not found under {vendor}: install swagger-ui-bundle-v2")
    return found[-1]


def _cached_json(build: Callable[[], dict[str, Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    cache: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        if not cache:
            # Built on the first request rather than at start-up: by then every route is registered.
            cache.append(json.dumps(build(), ensure_ascii=False).encode())
        return web.Response(body=cache[0], content_type="application/json", charset="utf-8")

    return handler


def add_docs_routes(app: web.Application) -> None:
    """GET /openapi.json and GET /docs (Swagger UI, from packaged assets). Both stay open: no API key."""
    assets = swagger_ui_dir()

    async def docs(request: web.Request) -> web.Response:
        return web.Response(
            text=_DOCS_HTML, content_type="text/html", headers={"Content-Security-Policy": _DOCS_CSP}
        )

    async def docs_init(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT_JS, content_type="application/javascript")

    app.router.add_get(OPENAPI_PATH, _cached_json(lambda: build_openapi(app)))
    app.router.add_get(DOCS_PATH, docs)
    app.router.add_get(DOCS_INIT_PATH, docs_init)
    app.router.add_static(DOCS_STATIC_PREFIX, assets, follow_symlinks=False)
