"""The API's own middleware: the correlation id, bounded input, and authentication (the others — the server
span, HTTP metrics, the error shape, the deadline — live with their concern)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from aiohttp import web

from notify.adapters.http.auth import API_KEY, PROTECTED_PREFIX
from notify.adapters.http.state import CORRELATION, MAX_BODY_BYTES, services
from notify.domain.errors import FieldError, Unauthorized, ValidationFailed
from notify.logs import correlation_id_var

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._:/=+-]{1,128}$")


@web.middleware
async def correlation_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    incoming = request.headers.get(CORRELATION_HEADER, "")
    correlation_id = incoming if _CORRELATION_OK.match(incoming) else uuid.uuid4().hex
    request[CORRELATION] = correlation_id
    token = correlation_id_var.set(correlation_id)
    try:
        response: web.StreamResponse = await handler(request)
    finally:
        correlation_id_var.reset(token)
    return response


async def stamp_correlation_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer carries the correlation id, also a stream (Server-Sent Events)
    whose headers are sent before its handler returns, where a middleware would set them too late."""
    correlation_id = request.get(CORRELATION)
    if correlation_id is not None:
        response.headers[CORRELATION_HEADER] = correlation_id


# Bodies of one notification, a template, a filter are small; only a batch of 1000 needs the full limit.
SMALL_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 5.0


def _body_limit(request: web.Request) -> int:
    full = request.app[MAX_BODY_BYTES]
    return full if request.path == "/api/v1/notifications/batch" else min(full, SMALL_BODY_BYTES)


@web.middleware
async def input_guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """What a client sends is bounded before anything else is done with it. Nothing is read for a request
    that is not authenticated or not routed (it holds no memory); a body is read only for a route that takes
    one, only up to that route's limit (413 past it) and within ``BODY_TIMEOUT_S`` (408). PostgreSQL text
    and jsonb cannot hold U+0000: it is refused anywhere in the input with a 400."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        raise ValidationFailed.for_fields([FieldError("query", "must not contain NUL characters", "nul")])
    routed = request.match_info.http_exception is None
    if routed and API_KEY in request and request.method in ("POST", "PUT", "PATCH") and request.can_read_body:
        limit = _body_limit(request)
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()  # cached for the handler; 413 past the app's limit
        except TimeoutError:
            raise web.HTTPRequestTimeout() from None
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        if b"\\u0000" in body or b"\x00" in body:
            raise ValidationFailed.for_fields([FieldError("body", "must not contain NUL characters", "nul")])
    response: web.StreamResponse = await handler(request)
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(PROTECTED_PREFIX):
        svc = services(request)
        peer = request.remote or "unknown"
        svc.failed_auth.check(peer)  # 429 before any lookup for a client guessing keys
        try:
            key = await svc.authenticator.authenticate(request.headers.get("Authorization"))
        except Unauthorized:
            svc.failed_auth.failed(peer)
            raise
        await svc.key_limiter.admit(key)
        request[API_KEY] = key
    response: web.StreamResponse = await handler(request)
    return response
