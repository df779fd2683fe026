"""The one error shape of the API: ``{"error": <sentence>, "code": <machine code>, "details": [...]}``.

Every failure, including unknown routes, malformed JSON, oversized bodies and bugs, leaves through here;
no stack trace ever reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from notify.adapters.http.jsonio import json_response
from notify.adapters.telemetry.metrics import UNAVAILABLE_ANSWERS
from notify.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    NotifyError,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

# The status each domain error is answered with: the one table the middleware below and the documented error
# answers (``contract.ERROR_RESPONSES``) read. A NotifyError not in it is a bug: a 500.
ERROR_STATUS: dict[type[NotifyError], int] = {
    ValidationFailed: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    Unavailable: 503,
}


def status_of(exc: NotifyError) -> int | None:
    return next((status for kind, status in ERROR_STATUS.items() if isinstance(exc, kind)), None)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(
        {"error": message, "code": code, "details": list(details)}, status=status, headers=headers
    )


def _path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_pydantic(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """Turn pydantic's errors into our field errors (``notifications[7].recipient`` style paths)."""
    details: list[FieldError] = []
    for err in exc.errors(include_url=False):
        if err["type"] == "json_invalid":
            raise ValidationFailed(
                "The request body is not valid JSON.", [FieldError("body", err["msg"], "invalid_json")]
            )
        field = _path(tuple(err["loc"]), prefix) or "body"
        message = "is not allowed" if err["type"] == "extra_forbidden" else err["msg"]
        details.append(FieldError(field, message, err["type"]))
    return ValidationFailed.for_fields(details)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    403: "forbidden",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _http_exception_response(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        raise exc  # redirects and the like pass through
    code = _HTTP_CODES.get(exc.status, "http_error")
    if exc.status == 404:
        message = "No such resource."
    elif exc.status == 405:
        message = "This method is not allowed on this resource."
    elif exc.status == 413:
        message = "The request body is larger than this server accepts."
    elif exc.status == 408:
        message = "The request body did not arrive in time."
    else:
        message = exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return error_response(exc.status, code, message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        return _http_exception_response(exc)
    except NotifyError as exc:
        status = status_of(exc)
        if status is None:
            log.exception("unmapped notify error")
            return error_response(500, "internal_error", "Something went wrong on our side.")
        if isinstance(exc, Unavailable):
            return _unavailable(exc.code, exc.message, exc.retry_after_s)
        headers: dict[str, str] = {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
            if exc.limit_per_s is not None:  # the RateLimit header fields (IETF draft), per second
                headers["RateLimit-Limit"] = str(max(1, math.floor(exc.limit_per_s)))
                headers["RateLimit-Remaining"] = "0"
                headers["RateLimit-Reset"] = headers["Retry-After"]
        details = exc.details if isinstance(exc, ValidationFailed | Conflict) else ()
        return error_response(status, exc.code, exc.message, [d.as_dict() for d in details], headers)
    except TimeoutError:
        # The request's deadline (deadline_middleware) ran out: a dependency is slow or locked.
        return _unavailable(
            "timeout", "The request did not finish in time; the service is busy. Try again shortly.", 1.0
        )
    except Exception as exc:
        if isinstance(exc, request.app.get(UNAVAILABLE_ERRORS, ())):
            log.warning("a dependency is unavailable", extra={"path": request.path, "error": repr(exc)})
            return _unavailable("unavailable", "The database is unavailable; try again shortly.", 1.0)
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal_error", "Something went wrong on our side.")


# Exceptions of the adapters that mean "a dependency is down" (the database's connection errors): the
# composition root sets them, so this module needs no driver.
UNAVAILABLE_ERRORS = web.AppKey("unavailable_errors", tuple)


def _unavailable(code: str, message: str, retry_after_s: float) -> web.Response:
    UNAVAILABLE_ANSWERS.labels(code).inc()
    return error_response(503, code, message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


@web.middleware
async def deadline_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request finishes within the app's deadline (``REQUEST_DEADLINE_S``): a locked table or an
    exhausted connection pool gives a 503, not a request that hangs."""
    deadline = request.app.get(REQUEST_DEADLINE_S)
    if deadline is None or request.path in ("/ws",):
        response: web.StreamResponse = await handler(request)
        return response
    async with asyncio.timeout(deadline):
        response = await handler(request)
    return response


REQUEST_DEADLINE_S = web.AppKey("request_deadline_s", float)
