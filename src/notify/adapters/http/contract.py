"""The vocabulary of the HTTP contract: a route (method, path, handler) with its operation (what it takes and
every answer it gives), and the error answers routes share. The table itself is ``routes.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from notify.adapters.http.errors import ERROR_STATUS
from notify.adapters.http.examples import NOTIFICATION_ID
from notify.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

# Response headers named by answers (components.headers).
LOCATION = "Location"
ETAG = "ETag"  # set by serve.py from the body, never by a handler; If-None-Match then answers 304
REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Success:
    """One 2xx answer. ``headers`` name components.headers entries that this answer always carries; a
    ``model`` of None is an answer without a body (204)."""

    status: int
    model: type[BaseModel] | None
    description: str
    example: Any
    headers: tuple[str, ...] = ()
    content: Mapping[str, Any] | None = None  # a non-JSON body: the OpenAPI content object as is


@dataclass(frozen=True, slots=True)
class Body:
    model: type[BaseModel]
    examples: Mapping[str, Any]
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented (method, path): what it takes and every answer it can give."""

    operation_id: str
    summary: str
    tag: str
    success: tuple[Success, ...]
    errors: frozenset[str]  # the ERROR_RESPONSES this operation can answer
    description: str = ""
    body: Body | None = None
    query: type[BaseModel] | None = None
    path_id: str | None = None  # what the {id} path parameter names, when the path has one
    idempotency_header: bool = False
    open: bool = False  # no API key needed


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers: a response model (None: no body) with one of its operation's documented
    statuses and the headers that answer documents. ``serve.py`` checks it against the route entry and
    serialises it through the model."""

    body: BaseModel | None
    status: int = 200
    headers: Mapping[str, str] | None = None


# A handler answers with a Reply; a route whose answer is not JSON (the WebSocket, Prometheus text, an error
# answer of its own) returns the aiohttp response itself.
Handler = Callable[[web.Request], Awaitable[Reply | web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the API: the router serves ``handler`` at (``method``, ``path``) and the OpenAPI document
    describes it from ``operation``; both read this one entry (``routes.py``)."""

    method: Method
    path: str  # as documented: OpenAPI's form, which is aiohttp's canonical one
    handler: Handler
    operation: Operation
    id_pattern: str | None = None  # a regex the router matches {id} with, when a sibling path would collide

    @property
    def router_path(self) -> str:
        if self.id_pattern is None:
            return self.path
        return self.path.replace("{id}", "{id:" + self.id_pattern + "}")


def error_example(code: str, message: str, *details: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "error": message,
        "code": code,
        "details": [{"field": f, "message": m, "code": c} for f, m, c in details],
    }


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A shared error answer (components.responses); ``headers`` are the ones it always carries."""

    status: int
    description: str
    examples: Mapping[str, Any]
    headers: tuple[str, ...] = ()


ERROR_RESPONSES: dict[str, ErrorResponse] = {
    "BadRequest": ErrorResponse(
        ERROR_STATUS[ValidationFailed],
        "The input is invalid: each failing field is named in `details`. Malformed JSON is a 400 as well.",
        {
            "invalid field": error_example(
                "validation_error",
                "Invalid input: recipient.",
                (
                    "recipient",
                    "must be a phone number in E.164 format, e.g. +14155550123",
                    "invalid_phone_number",
                ),
            ),
            "malformed JSON": error_example(
                "validation_error",
                "The request body is not valid JSON.",
                ("body", "Invalid JSON: EOF while parsing an object at line 1 column 1", "invalid_json"),
            ),
        },
    ),
    "Unauthorized": ErrorResponse(
        ERROR_STATUS[Unauthorized],
        "No API key, or an unknown or revoked one.",
        {"no key": error_example("unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")},
        ("WWW-Authenticate",),
    ),
    "NotFound": ErrorResponse(
        ERROR_STATUS[NotFound],
        "No such object for this API key's tenant.",
        {"not found": error_example("not_found", f"Notification {NOTIFICATION_ID} was not found.")},
    ),
    "Conflict": ErrorResponse(
        ERROR_STATUS[Conflict],
        "The request contradicts the current state: an idempotency key reused with another payload, or a "
        "status change the notification's status does not allow.",
        {
            "idempotency key reused": error_example(
                "conflict", "The idempotency key 'order-1234-otp' was already used with a different request."
            ),
            "illegal transition": error_example(
                "illegal_transition", "A notification in status 'delivered' cannot become 'cancelled'."
            ),
        },
    ),
    "PayloadTooLarge": ErrorResponse(
        413,
        "The request body is larger than the server accepts.",
        {
            "too large": error_example(
                "payload_too_large", "The request body is larger than this server accepts."
            )
        },
    ),
    "TooManyRequests": ErrorResponse(
        ERROR_STATUS[RateLimited],
        "The API key is over its request rate: retry after `Retry-After` seconds.",
        {
            "rate limited": error_example(
                "rate_limited", "This API key is limited to 200 requests per second."
            )
        },
        ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
    ),
    "Forbidden": ErrorResponse(
        ERROR_STATUS[Forbidden],
        "The API key may not do this: acting beyond its tenant (the global delivery switch, another tenant) "
        "needs an admin key (`notify keys create --admin`).",
        {
            "not an admin": error_example(
                "forbidden", "Pausing or resuming delivery for every tenant needs an admin API key."
            )
        },
    ),
    "Unavailable": ErrorResponse(
        ERROR_STATUS[Unavailable],
        "A dependency is unavailable or the service is shedding load: retry after `Retry-After` seconds.",
        {"unavailable": error_example("unavailable", "The service is unavailable; try again shortly.")},
        ("Retry-After",),
    ),
    # Readiness answers 503 with a body of its own and no Retry-After.
    "NotReady": ErrorResponse(
        503,
        "A dependency does not answer; `details` names each one.",
        {
            "kafka down": error_example(
                "not_ready",
                "A dependency is not available.",
                ("database", "ok", "unavailable"),
                ("kafka", "unavailable: KafkaConnectionError", "unavailable"),
            )
        },
    ),
}
