"""The API's request handlers (the templates' are in ``templates.py``); ``routes.py`` maps them to routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from uuid import UUID

from aiohttp import web

from notify.adapters.http.auth import API_KEY, tenant_of
from notify.adapters.http.contract import LOCATION, REPLAYED, Reply
from notify.adapters.http.errors import error_response
from notify.adapters.http.inputs import body, query
from notify.adapters.http.responses import (
    AttemptListOut,
    BatchCreatedOut,
    BatchOut,
    DeadLetterReplayOut,
    DeliveryStateOut,
    ErasedOut,
    HealthOut,
    LiveTokenOut,
    MetricsOut,
    NotificationOut,
    PageOut,
    ReadyOut,
    ReceiptListOut,
    TimelineOut,
)
from notify.adapters.http.schemas import (
    BatchIn,
    BatchPageParams,
    ChannelScopeIn,
    DeadLetterParams,
    DeadLetterReplayIn,
    DeliveryParams,
    EraseIn,
    EventsParams,
    ListParams,
    MetricsParams,
    NotificationIn,
    decode_cursor,
)
from notify.adapters.http.state import CORRELATION, LIVE, RECEIPTS, RETENTION, STATS, ReadinessCheck, services
from notify.adapters.telemetry.metrics import count_accepted
from notify.domain.errors import FieldError, Forbidden, ValidationFailed
from notify.domain.queries import DeadLetterQuery, ListQuery
from notify.domain.validation import MAX_IDEMPOTENCY_KEY_CHARS

log = logging.getLogger(__name__)


def _notification_id(request: web.Request) -> UUID:
    raw = request.match_info["id"]
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a notification id (UUID)", "invalid_id")]
        ) from None


async def create_notification(request: web.Request) -> Reply:
    payload = body(request, NotificationIn)
    accepted = await services(request).notifications.accept(
        tenant_of(request), payload.to_new(request.headers.get("Idempotency-Key")), request[CORRELATION]
    )
    n = accepted.notification
    headers = {LOCATION: f"/api/v1/notifications/{n.id}"}
    if accepted.replayed:
        headers[REPLAYED] = "true"
    else:
        count_accepted([n])
    return Reply(NotificationOut.of(n), 200 if accepted.replayed else 201, headers)


async def create_batch(request: web.Request) -> Reply:
    payload = body(request, BatchIn)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ValidationFailed.for_fields(
            [FieldError("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters", "invalid")]
        )
    accepted = await services(request).notifications.accept_batch(
        tenant_of(request), [item.to_new() for item in payload.notifications], request[CORRELATION], key
    )
    headers = {LOCATION: f"/api/v1/batches/{accepted.batch.id}"}
    if accepted.replayed:
        headers[REPLAYED] = "true"
    else:
        count_accepted(accepted.notifications)
    return Reply(
        BatchCreatedOut.of(accepted.batch, accepted.notifications), 200 if accepted.replayed else 201, headers
    )


def _batch_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a batch id (UUID)", "invalid_id")]
        ) from None


async def get_batch(request: web.Request) -> Reply:
    batch, counts = await services(request).notifications.batch(tenant_of(request), _batch_id(request))
    return Reply(BatchOut.counted(batch, counts))


async def list_batch_notifications(request: web.Request) -> Reply:
    batch, _ = await services(request).notifications.batch(tenant_of(request), _batch_id(request))
    params = query(request, BatchPageParams)
    page = await services(request).notifications.list(
        ListQuery(
            tenant_id=tenant_of(request),
            batch_id=batch.id,
            status=params.status,
            after_id=decode_cursor(params.cursor) if params.cursor else None,
            page_size=params.page_size,
        )
    )
    return Reply(PageOut.of(page))


async def get_notification(request: web.Request) -> Reply:
    notification = await services(request).notifications.get(tenant_of(request), _notification_id(request))
    return Reply(NotificationOut.of(notification))


async def list_notifications(request: web.Request) -> Reply:
    params = query(request, ListParams)
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
    return Reply(PageOut.of(page))


async def cancel_notification(request: web.Request) -> Reply:
    notification = await services(request).notifications.cancel(tenant_of(request), _notification_id(request))
    return Reply(NotificationOut.of(notification))


async def list_attempts(request: web.Request) -> Reply:
    ledger = await services(request).operations.attempts(tenant_of(request), _notification_id(request))
    return Reply(AttemptListOut.of(ledger))


async def get_timeline(request: web.Request) -> Reply:
    changes = await services(request).operations.timeline(tenant_of(request), _notification_id(request))
    return Reply(TimelineOut.of(changes))


async def list_receipts(request: web.Request) -> Reply:
    receipts = await request.app[RECEIPTS].of(tenant_of(request), _notification_id(request))
    return Reply(ReceiptListOut.of(receipts))


async def replay_notification(request: web.Request) -> Reply:
    notification = await services(request).operations.replay(tenant_of(request), _notification_id(request))
    return Reply(NotificationOut.of(notification))


async def list_dead_letters(request: web.Request) -> Reply:
    params = query(request, DeadLetterParams)
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
    return Reply(PageOut.of(page))


async def replay_dead_letters(request: web.Request) -> Reply:
    payload = body(request, DeadLetterReplayIn)
    dead_letters = DeadLetterQuery(
        tenant_id=tenant_of(request),
        channel=payload.channel,
        provider=payload.provider,
        error_contains=payload.error,
        date_from=payload.date_from,
        date_to=payload.date_to,
    )
    result = await services(request).operations.replay_dead_letters(
        dead_letters, dry_run=payload.dry_run, limit=payload.limit
    )
    return Reply(
        DeadLetterReplayOut(
            dry_run=payload.dry_run,
            matched=result.matched,
            replayed=result.replayed,
            remaining=result.remaining,
        )
    )


async def get_delivery(request: web.Request) -> Reply:
    params = query(request, DeliveryParams)
    key = request[API_KEY]
    tenant = params.tenant_id or key.tenant_id
    if tenant != key.tenant_id and not key.is_admin:
        raise Forbidden("Another tenant's delivery state needs an admin API key.")
    return Reply(DeliveryStateOut.of(await services(request).operations.delivery_state(tenant)))


async def _set_paused(request: web.Request, paused: bool) -> Reply:
    scope = body(request, ChannelScopeIn)
    state = await services(request).operations.set_paused(
        request[API_KEY], paused, scope.channel, scope=scope.scope, tenant_id=scope.tenant_id
    )
    return Reply(DeliveryStateOut.of(state))


async def pause_delivery(request: web.Request) -> Reply:
    return await _set_paused(request, True)


async def resume_delivery(request: web.Request) -> Reply:
    return await _set_paused(request, False)


async def get_metrics(request: web.Request) -> Reply:
    params = query(request, MetricsParams)
    metrics = await request.app[STATS].metrics(tenant_of(request), params.window_s)
    return Reply(MetricsOut.of(metrics))


async def create_live_token(request: web.Request) -> Reply:
    token, expires_at = await services(request).authenticator.issue_live_token(request[API_KEY])
    return Reply(LiveTokenOut(token=token, expires_at=expires_at, url=f"/ws?token={token}"), 201)


async def websocket(request: web.Request) -> web.StreamResponse:
    if LIVE not in request.app:
        return error_response(503, "unavailable", "Live status is not available in this process.", [])
    return await request.app[LIVE].handle(request)


async def health(request: web.Request) -> Reply:
    return Reply(HealthOut(status="ok"))


async def ready(request: web.Request) -> Reply | web.Response:
    svc = services(request)
    return await readiness_response(svc.readiness, svc.informational)


async def readiness_response(
    checks: Mapping[str, ReadinessCheck], informational: Mapping[str, ReadinessCheck] | None = None
) -> Reply | web.Response:
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
        return Reply(ReadyOut(status="ready", checks=dict.fromkeys(results, "ok"), also=also or None))
    return error_response(
        503,
        "not_ready",
        "A dependency is not available.",
        [{"field": name, "message": state, "code": "unavailable"} for name, state in sorted(results.items())],
    )


async def events_stream(request: web.Request) -> web.StreamResponse:
    params = query(request, EventsParams)
    since = params.since
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if last_event_id:
        if not last_event_id.isdigit() or len(last_event_id) > 19:
            raise ValidationFailed.for_fields(
                [FieldError("Last-Event-ID", "must be an event id this stream sent", "invalid")]
            )
        since = int(last_event_id)
    if since is not None and since < 0:
        raise ValidationFailed.for_fields(
            [FieldError("since", "must be an event id (0 or more)", "out_of_range")]
        )
    return await request.config_dict[LIVE].stream(
        request, request[API_KEY], since, params.channel, params.tenants == "all"
    )


async def erase_recipient(request: web.Request) -> Reply:
    wanted = body(request, EraseIn)
    erased = await request.config_dict[RETENTION].erase(tenant_of(request), wanted.recipient)
    return Reply(ErasedOut.of(erased))
