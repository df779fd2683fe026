"""The API's request handlers (the templates' are in ``templates.py``); ``routes.py`` maps them to routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from aiohttp import web

from notify.adapters.http.auth import (
    API_KEY,
    tenant_of,
)
from notify.adapters.http.errors import error_response
from notify.adapters.http.inputs import json_body, optional_body, query_params
from notify.adapters.http.jsonio import json_response
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
from notify.adapters.http.state import CORRELATION, LIVE, STATS, ReadinessCheck, services
from notify.adapters.telemetry.metrics import count_accepted
from notify.app.operations import DeliveryState
from notify.domain.errors import FieldError, Forbidden, ValidationFailed
from notify.domain.model import Channel
from notify.domain.pauses import PauseState
from notify.domain.queries import DeadLetterQuery, ListQuery, Page
from notify.domain.validation import MAX_IDEMPOTENCY_KEY_CHARS

log = logging.getLogger(__name__)


def _page_json(page: Page) -> dict[str, Any]:
    return {
        "data": [notification_json(n) for n in page.items],
        "next_cursor": encode_cursor(page.next_after_id) if page.next_after_id else None,
    }


def _notification_id(request: web.Request) -> UUID:
    raw = request.match_info["id"]
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a notification id (UUID)", "invalid_id")]
        ) from None


async def create_notification(request: web.Request) -> web.Response:
    payload = await json_body(request, NotificationIn)
    accepted = await services(request).notifications.accept(
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
    payload = await json_body(request, BatchIn)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValidationFailed.for_fields(
            [FieldError("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters", "invalid")]
        )
    accepted = await services(request).notifications.accept_batch(
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
    batch, counts = await services(request).notifications.batch(tenant_of(request), _batch_id(request))
    return json_response(batch_json(batch, counts))


async def list_batch_notifications(request: web.Request) -> web.Response:
    batch, _ = await services(request).notifications.batch(tenant_of(request), _batch_id(request))
    params = query_params(request, BatchPageParams)
    page = await services(request).notifications.list(
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
    notification = await services(request).notifications.get(tenant_of(request), _notification_id(request))
    return json_response(notification_json(notification))


async def list_notifications(request: web.Request) -> web.Response:
    params = query_params(request, ListParams)
    if params.date_from and params.date_to and params.date_from > params.date_to:
        raise ValidationFailed.for_fields(
            [FieldError("date_to", "must not be before date_from", "invalid_range")]
        )
    page = await services(request).notifications.list(
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
    notification = await services(request).notifications.cancel(tenant_of(request), _notification_id(request))
    return json_response(notification_json(notification))


async def list_attempts(request: web.Request) -> web.Response:
    ledger = await services(request).operations.attempts(tenant_of(request), _notification_id(request))
    return json_response({"data": [attempt_json(a) for a in ledger]})


async def replay_notification(request: web.Request) -> web.Response:
    notification = await services(request).operations.replay(tenant_of(request), _notification_id(request))
    return json_response(notification_json(notification))


async def list_dead_letters(request: web.Request) -> web.Response:
    params = query_params(request, DeadLetterParams)
    page = await services(request).operations.dead_letters(
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
    body = await optional_body(request, DeadLetterReplayIn)
    query = DeadLetterQuery(
        tenant_id=tenant_of(request),
        channel=body.channel,
        provider=body.provider,
        error_contains=body.error,
        date_from=body.date_from,
        date_to=body.date_to,
    )
    result = await services(request).operations.replay_dead_letters(
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
    params = query_params(request, DeliveryParams)
    key = request[API_KEY]
    tenant = params.tenant_id or key.tenant_id
    if tenant != key.tenant_id and not key.is_admin:
        raise Forbidden("Another tenant's delivery state needs an admin API key.")
    return json_response(_delivery_json(await services(request).operations.delivery_state(tenant)))


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    body = await optional_body(request, ChannelScopeIn)
    state = await services(request).operations.set_paused(
        request[API_KEY], paused, body.channel, scope=body.scope, tenant_id=body.tenant_id
    )
    return json_response(_delivery_json(state))


async def pause_delivery(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def resume_delivery(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def get_metrics(request: web.Request) -> web.Response:
    params = query_params(request, MetricsParams)
    metrics = await request.app[STATS].metrics(tenant_of(request), params.window_s)
    return json_response(metrics_json(metrics))


async def create_live_token(request: web.Request) -> web.Response:
    token, expires_at = await services(request).authenticator.issue_live_token(request[API_KEY])
    return json_response(
        {"token": token, "expires_at": rfc3339(expires_at), "url": f"/ws?token={token}"}, status=201
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    if LIVE not in request.app:
        return error_response(503, "unavailable", "Live status is not available in this process.", [])
    return await request.app[LIVE].handle(request)


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    svc = services(request)
    return await readiness_response(svc.readiness, svc.informational)


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
