"""The aiohttp application of ``notify api``: routes, middleware, and the state handlers read."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from notify.adapters.http.auth import (
    API_KEY,
    PROTECTED_PREFIX,
    FailedAuthLimiter,
    KeyRateLimiter,
    tenant_of,
)
from notify.adapters.http.errors import deadline_middleware, error_middleware, error_response, from_pydantic
from notify.adapters.http.jsonio import json_response
from notify.adapters.http.live import LiveEndpoint
from notify.adapters.http.openapi import add_docs_routes
from notify.adapters.http.schemas import (
    BatchIn,
    BatchPageParams,
    ChannelScopeIn,
    DeadLetterParams,
    DeadLetterReplayIn,
    DeliveryParams,
    ListParams,
    MetricsParams,
    NotificationIn,
    attempt_json,
    batch_json,
    decode_cursor,
    encode_cursor,
    metrics_json,
    notification_json,
    rfc3339,
)
from notify.adapters.http.templates import add_template_routes
from notify.adapters.telemetry.metrics import count_accepted, http_metrics_middleware, metrics_handler
from notify.adapters.telemetry.tracing import server_span_middleware
from notify.app.auth import Authenticator
from notify.app.notifications import NotificationService
from notify.app.operations import DeliveryState, Operations
from notify.app.stats import StatsService
from notify.app.templates import TemplateService
from notify.domain.errors import FieldError, Forbidden, Unauthorized, ValidationFailed
from notify.domain.model import Channel
from notify.domain.pauses import PauseState
from notify.domain.validation import MAX_IDEMPOTENCY_KEY_CHARS
from notify.logs import correlation_id_var
from notify.ports.store import DeadLetterQuery, ListQuery, Page

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._:/=+-]{1,128}$")

ReadinessCheck = Callable[[], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


@dataclass
class ApiServices:
    notifications: NotificationService
    operations: Operations
    authenticator: Authenticator
    key_limiter: KeyRateLimiter
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Reported by /health/ready, but not making the process unready.
    informational: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    failed_auth: FailedAuthLimiter = field(default_factory=FailedAuthLimiter)


SERVICES = web.AppKey("services", ApiServices)
LIVE = web.AppKey("live", LiveEndpoint)
TEMPLATES = web.AppKey("templates", TemplateService)
STATS = web.AppKey("stats", StatsService)
CORRELATION = web.RequestKey("correlation_id", str)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)  # NOTIFY_MAX_BODY_BYTES: a batch's limit


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
    response.headers[CORRELATION_HEADER] = correlation_id
    return response


def _page_json(page: Page) -> dict[str, Any]:
    return {
        "data": [notification_json(n) for n in page.items],
        "next_cursor": encode_cursor(page.next_after_id) if page.next_after_id else None,
    }


def _services(request: web.Request) -> ApiServices:
    return request.app[SERVICES]


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
        services = _services(request)
        peer = request.remote or "unknown"
        services.failed_auth.check(peer)  # 429 before any lookup for a client guessing keys
        try:
            key = await services.authenticator.authenticate(request.headers.get("Authorization"))
        except Unauthorized:
            services.failed_auth.failed(peer)
            raise
        await services.key_limiter.admit(key)
        request[API_KEY] = key
    response: web.StreamResponse = await handler(request)
    return response


def _notification_id(request: web.Request) -> UUID:
    raw = request.match_info["id"]
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a notification id (UUID)", "invalid_id")]
        ) from None


async def _json_body(request: web.Request) -> bytes:
    body = await request.read()  # raises 413 past client_max_size
    if not body:
        raise ValidationFailed(
            "The request body is empty; a JSON object is expected.",
            [FieldError("body", "is required", "required")],
        )
    return body


async def create_notification(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        payload = NotificationIn.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None
    accepted = await _services(request).notifications.accept(
        tenant_of(request), payload.to_new(request.headers.get("Idempotency-Key")), request[CORRELATION]
    )
    n = accepted.notification
    headers = {"Location": f"/api/v1/notifications/{n.id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    else:
        count_accepted([n])
    return json_response(notification_json(n), status=200 if accepted.replayed else 201, headers=headers)


async def create_batch(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        payload = BatchIn.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValidationFailed.for_fields(
            [FieldError("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters", "invalid")]
        )
    accepted = await _services(request).notifications.accept_batch(
        tenant_of(request), [item.to_new() for item in payload.notifications], request[CORRELATION], key
    )
    headers = {"Location": f"/api/v1/batches/{accepted.batch.id}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    else:
        count_accepted(accepted.notifications)
    return json_response(
        {
            "batch": batch_json(accepted.batch),
            "notifications": [notification_json(n) for n in accepted.notifications],
        },
        status=200 if accepted.replayed else 201,
        headers=headers,
    )


def _batch_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a batch id (UUID)", "invalid_id")]
        ) from None


async def get_batch(request: web.Request) -> web.Response:
    batch, counts = await _services(request).notifications.batch(tenant_of(request), _batch_id(request))
    return json_response(batch_json(batch, counts))


async def list_batch_notifications(request: web.Request) -> web.Response:
    batch, _ = await _services(request).notifications.batch(tenant_of(request), _batch_id(request))
    params = _query_params(request, BatchPageParams)
    page = await _services(request).notifications.list(
        ListQuery(
            tenant_id=tenant_of(request),
            batch_id=batch.id,
            status=params.status,
            after_id=decode_cursor(params.cursor) if params.cursor else None,
            page_size=params.page_size,
        )
    )
    return json_response(_page_json(page))


async def get_notification(request: web.Request) -> web.Response:
    notification = await _services(request).notifications.get(tenant_of(request), _notification_id(request))
    return json_response(notification_json(notification))


async def list_notifications(request: web.Request) -> web.Response:
    params = _query_params(request, ListParams)
    if params.date_from and params.date_to and params.date_from > params.date_to:
        raise ValidationFailed.for_fields(
            [FieldError("date_to", "must not be before date_from", "invalid_range")]
        )
    page = await _services(request).notifications.list(
        ListQuery(
            tenant_id=tenant_of(request),
            status=params.status,
            channel=params.channel,
            priority=params.priority,
            batch_id=params.batch_id,
            recipient=params.recipient,
            date_from=params.date_from,
            date_to=params.date_to,
            after_id=decode_cursor(params.cursor) if params.cursor else None,
            page_size=params.page_size,
        )
    )
    return json_response(_page_json(page))


async def cancel_notification(request: web.Request) -> web.Response:
    notification = await _services(request).notifications.cancel(
        tenant_of(request), _notification_id(request)
    )
    return json_response(notification_json(notification))


async def list_attempts(request: web.Request) -> web.Response:
    ledger = await _services(request).operations.attempts(tenant_of(request), _notification_id(request))
    return json_response({"data": [attempt_json(a) for a in ledger]})


async def replay_notification(request: web.Request) -> web.Response:
    notification = await _services(request).operations.replay(tenant_of(request), _notification_id(request))
    return json_response(notification_json(notification))


def _query_params(request: web.Request, model: type[M]) -> M:
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:
        raise ValidationFailed.for_fields(
            [FieldError(k, "must be given at most once", "repeated") for k in repeated]
        )
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise from_pydantic(exc) from None


async def _optional_body(request: web.Request, model: type[M]) -> M:
    """A JSON body that may be absent (then every field takes its default)."""
    body = await request.read()
    try:
        return model.model_validate_json(body) if body.strip() else model.model_validate({})
    except ValidationError as exc:
        raise from_pydantic(exc) from None


async def list_dead_letters(request: web.Request) -> web.Response:
    params = _query_params(request, DeadLetterParams)
    page = await _services(request).operations.dead_letters(
        DeadLetterQuery(
            tenant_id=tenant_of(request),
            channel=params.channel,
            provider=params.provider,
            error_contains=params.error,
            date_from=params.date_from,
            date_to=params.date_to,
            after_id=decode_cursor(params.cursor) if params.cursor else None,
            page_size=params.page_size,
        )
    )
    return json_response(_page_json(page))


async def replay_dead_letters(request: web.Request) -> web.Response:
    body = await _optional_body(request, DeadLetterReplayIn)
    query = DeadLetterQuery(
        tenant_id=tenant_of(request),
        channel=body.channel,
        provider=body.provider,
        error_contains=body.error,
        date_from=body.date_from,
        date_to=body.date_to,
    )
    result = await _services(request).operations.replay_dead_letters(
        query, dry_run=body.dry_run, limit=body.limit
    )
    return json_response(
        {
            "dry_run": body.dry_run,
            "matched": result.matched,
            "replayed": result.replayed,
            "remaining": result.remaining,
        }
    )


def _pause_json(state: PauseState) -> dict[str, Any]:
    return {
        "paused": state.all_channels,
        "channels": {c.value: {"paused": state.is_paused(c)} for c in Channel},
    }


def _delivery_json(state: DeliveryState) -> dict[str, Any]:
    return {
        "tenant_id": state.tenant_id,
        "paused": state.paused_all,
        "channels": {c.value: {"paused": state.is_paused(c)} for c in Channel},
        "global": _pause_json(state.everyone),
        "tenant": _pause_json(state.tenant),
    }


async def get_delivery(request: web.Request) -> web.Response:
    params = _query_params(request, DeliveryParams)
    key = request[API_KEY]
    tenant = params.tenant_id or key.tenant_id
    if tenant != key.tenant_id and not key.is_admin:
        raise Forbidden("Another tenant's delivery state needs an admin API key.")
    return json_response(_delivery_json(await _services(request).operations.delivery_state(tenant)))


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    body = await _optional_body(request, ChannelScopeIn)
    state = await _services(request).operations.set_paused(
        request[API_KEY], paused, body.channel, scope=body.scope, tenant_id=body.tenant_id
    )
    return json_response(_delivery_json(state))


async def pause_delivery(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def resume_delivery(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def get_metrics(request: web.Request) -> web.Response:
    params = _query_params(request, MetricsParams)
    metrics = await request.app[STATS].metrics(tenant_of(request), params.window_s)
    return json_response(metrics_json(metrics))


async def create_live_token(request: web.Request) -> web.Response:
    token, expires_at = await _services(request).authenticator.issue_live_token(request[API_KEY])
    return json_response(
        {"token": token, "expires_at": rfc3339(expires_at), "url": f"/ws?token={token}"}, status=201
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    if LIVE not in request.app:
        return error_response(503, "unavailable", "Live status is not available in this process.", [])
    return await request.app[LIVE].handle(request)


async def _close_websockets(app: web.Application) -> None:
    if LIVE in app:
        await app[LIVE].shutdown()


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    services = _services(request)
    return await readiness_response(services.readiness, services.informational)


async def readiness_response(
    checks: Mapping[str, ReadinessCheck], informational: Mapping[str, ReadinessCheck] | None = None
) -> web.Response:
    """200 when every check passes within 2 s, else 503 in the error shape naming the failing ones. The
    ``informational`` checks are reported (under ``also``) and never make the answer a 503."""
    results: dict[str, str] = {}
    also: dict[str, str] = {}

    async def run(name: str, check: ReadinessCheck, into: dict[str, str]) -> None:
        try:
            await asyncio.wait_for(check(), timeout=2.0)
            into[name] = "ok"
        except Exception as exc:
            into[name] = f"unavailable: {type(exc).__name__}"

    await asyncio.gather(
        *(run(n, c, results) for n, c in checks.items()),
        *(run(n, c, also) for n, c in (informational or {}).items()),
    )
    if all(v == "ok" for v in results.values()):
        body: dict[str, Any] = {"status": "ready", "checks": results}
        if also:
            body["also"] = also
        return json_response(body)
    return error_response(
        503,
        "not_ready",
        "A dependency is not available.",
        [{"field": name, "message": state, "code": "unavailable"} for name, state in sorted(results.items())],
    )


def create_worker_app(readiness: Mapping[str, ReadinessCheck]) -> web.Application:
    """The worker's own small HTTP port: liveness, readiness and Prometheus metrics."""

    async def worker_ready(request: web.Request) -> web.Response:
        return await readiness_response(readiness)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", worker_ready)
    app.router.add_get("/metrics", metrics_handler)
    return app


def create_app(
    max_body_bytes: int,
    resources: Callable[[web.Application], AsyncIterator[None]],
) -> web.Application:
    """``resources`` is a cleanup context that opens what the handlers need and sets ``app[SERVICES]``,
    ``app[TEMPLATES]`` and ``app[STATS]``."""
    app = web.Application(
        middlewares=[
            correlation_middleware,
            server_span_middleware,
            http_metrics_middleware,
            error_middleware,
            deadline_middleware,
            auth_middleware,
            input_guard_middleware,
        ],
        client_max_size=max_body_bytes,
    )
    app[MAX_BODY_BYTES] = max_body_bytes
    app.cleanup_ctx.append(resources)
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/ws", websocket)
    app.on_shutdown.append(_close_websockets)
    app.router.add_post("/api/v1/notifications", create_notification)
    app.router.add_post("/api/v1/notifications/batch", create_batch)
    app.router.add_get("/api/v1/batches/{id}", get_batch)
    app.router.add_get("/api/v1/batches/{id}/notifications", list_batch_notifications)
    app.router.add_get("/api/v1/notifications", list_notifications)
    # "batch" is a sibling route (POST only), not a notification id.
    app.router.add_get("/api/v1/notifications/{id:(?!batch$)[^{}/]+}", get_notification)
    app.router.add_patch("/api/v1/notifications/{id}/cancel", cancel_notification)
    app.router.add_get("/api/v1/notifications/{id}/attempts", list_attempts)
    app.router.add_post("/api/v1/notifications/{id}/replay", replay_notification)
    app.router.add_get("/api/v1/dead-letters", list_dead_letters)
    app.router.add_post("/api/v1/dead-letters/replay", replay_dead_letters)
    add_template_routes(app, TEMPLATES, tenant_of)
    app.router.add_get("/api/v1/delivery", get_delivery)
    app.router.add_post("/api/v1/delivery/pause", pause_delivery)
    app.router.add_post("/api/v1/delivery/resume", resume_delivery)
    app.router.add_get("/api/v1/metrics", get_metrics)
    app.router.add_post("/api/v1/live/tokens", create_live_token)
    add_docs_routes(app)
    return app
