"""The API's answers as pydantic models. A handler answers with one of these (built from domain objects by
its ``of``), the route table documents it, and it is serialised through the model: the documented shape is
the sent shape. Long (~400 lines) because it is every answer of the API, each with its field descriptions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from notify.adapters.http.schemas import encode_cursor
from notify.adapters.telemetry.tracing import trace_id_of
from notify.app.operations import DeliveryState
from notify.app.stats import ChannelMetrics, Metrics
from notify.domain.delivery import AttemptOutcome, AttemptRecord
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.pauses import PauseState
from notify.domain.queries import Page
from notify.domain.receipts import Receipt, ReceiptStatus
from notify.domain.retention import Erased
from notify.domain.templates import Template
from notify.domain.timeline import StatusChange
from notify.domain.validation import sms_segments
from notify.domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from notify.ports.tenant_providers import StoredProviders


class _Out(BaseModel):
    # extra="forbid" becomes additionalProperties: false in the document, and a key an answer does not declare
    # is refused when the answer is built. Aliases (``global``) are what is sent.
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)


class SmsInfoOut(_Out):
    """How an SMS is encoded and how many parts it needs (null for other channels)."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int = Field(ge=1)

    @classmethod
    def of(cls, notification: Notification) -> Self | None:
        if notification.channel is not Channel.SMS:
            return None
        parts = sms_segments(notification.content)
        return cls(encoding=parts.encoding, segments=parts.segments)


class NotificationOut(_Out):
    """A notification as the API returns it. Timestamps are RFC 3339 in UTC; absent values are null."""

    id: UUID = Field(description="Time-ordered (UUIDv7).")
    batch_id: UUID | None
    channel: Channel
    recipient: str = Field(description="Normalized: E.164 phone number, email address or push token.")
    subject: str | None
    content: str = Field(description="The text sent (rendered from the template when template_id is set).")
    priority: Priority
    status: Status
    scheduled_at: datetime | None
    expires_at: datetime | None
    idempotency_key: str | None
    template_id: UUID | None
    template_variables: dict[str, Any] | None
    metadata: dict[str, Any]
    attempts: int = Field(ge=0, description="Delivery attempts made so far.")
    max_retries: int = Field(ge=0)
    provider: str | None = Field(description="The provider of the last attempt.")
    provider_message_id: str | None
    error_message: str | None
    sent_at: datetime | None
    failed_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    sms: SmsInfoOut | None
    trace_id: str | None = Field(
        pattern="^[0-9a-f]{32}$",
        description="The OpenTelemetry trace that follows this notification (open it in Jaeger: "
        "/trace/<trace_id>); null when it was not traced.",
    )

    @classmethod
    def of(cls, n: Notification) -> Self:
        return cls(
            id=n.id,
            batch_id=n.batch_id,
            channel=n.channel,
            recipient=n.recipient,
            subject=n.subject,
            content=n.content,
            priority=n.priority,
            status=n.status,
            scheduled_at=n.scheduled_at,
            expires_at=n.expires_at,
            idempotency_key=n.idempotency_key,
            template_id=n.template_id,
            template_variables=n.template_variables,
            metadata=n.metadata,
            attempts=n.attempts,
            max_retries=n.max_retries,
            provider=n.provider,
            provider_message_id=n.provider_message_id,
            error_message=n.error_message,
            sent_at=n.sent_at,
            failed_at=n.failed_at,
            next_attempt_at=n.next_attempt_at,
            created_at=n.created_at,
            updated_at=n.updated_at,
            sms=SmsInfoOut.of(n),
            trace_id=trace_id_of(n.trace_context),
        )

    @classmethod
    def all(cls, notifications: Iterable[Notification]) -> list[Self]:
        return [cls.of(n) for n in notifications]


class PageOut(_Out):
    """One page of notifications, newest first. Pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[NotificationOut]
    next_cursor: str | None = Field(description="Null on the last page.")

    @classmethod
    def of(cls, page: Page) -> Self:
        return cls(
            data=NotificationOut.all(page.items),
            next_cursor=encode_cursor(page.next_after_id) if page.next_after_id else None,
        )


class AttemptOut(_Out):
    """One provider call of the delivery attempts ledger."""

    attempt: int = Field(ge=1)
    provider: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    http_status: int | None = Field(description="The provider's HTTP status, when it answered.")
    error: str | None
    latency_ms: float = Field(ge=0)
    breaker_trial: bool = Field(
        description="A half-open circuit breaker's trial call that failed: the provider was still down. "
        "It does not use up one of the notification's retries."
    )

    @classmethod
    def of(cls, a: AttemptRecord) -> Self:
        return cls(
            attempt=a.attempt,
            provider=a.provider,
            started_at=a.started_at,
            finished_at=a.finished_at,
            outcome=a.outcome,
            http_status=a.http_status,
            error=a.error,
            latency_ms=round(a.latency_ms, 3),
            breaker_trial=a.breaker_trial,
        )


class AttemptListOut(_Out):
    """The delivery attempts of one notification, in order."""

    data: list[AttemptOut]

    @classmethod
    def of(cls, ledger: Iterable[AttemptRecord]) -> Self:
        return cls(data=[AttemptOut.of(a) for a in ledger])


class StatusChangeOut(_Out):
    """One entry of a notification's timeline."""

    status: Status
    previous_status: Status | None = Field(
        description="Null for the first entry: the notification's creation."
    )
    attempt: int = Field(ge=0, description="The attempt being made (processing), else the attempts made.")
    error: str | None = Field(description="Why, for retrying and failed.")
    provider: str | None = Field(description="The provider of the last attempt, once there was one.")
    at: datetime

    @classmethod
    def of(cls, c: StatusChange) -> Self:
        return cls(
            status=c.status,
            previous_status=c.previous_status,
            attempt=c.attempt,
            error=c.error,
            provider=c.provider,
            at=c.at,
        )


class TimelineOut(_Out):
    """Every status a notification was in, oldest first: its creation, then each change (kept for
    NOTIFY_STATUS_HISTORY_DAYS; older changes are gone, the creation stays)."""

    data: list[StatusChangeOut]

    @classmethod
    def of(cls, changes: Iterable[StatusChange]) -> Self:
        return cls(data=[StatusChangeOut.of(c) for c in changes])


class ReceiptOut(_Out):
    """What a provider reported after it accepted the notification: the outcome at the handset or mailbox."""

    provider: str
    provider_message_id: str
    status: ReceiptStatus = Field(
        description="delivered (the handset or mailbox has it), undelivered, bounced, complained, or "
        "in_transit (on its way)."
    )
    provider_status: str = Field(description="The provider's own word for it, e.g. Twilio's `undelivered`.")
    error_code: str | None = Field(description="The provider's error code, when it gave one.")
    received_at: datetime

    @classmethod
    def of(cls, r: Receipt) -> Self:
        return cls(
            provider=r.provider,
            provider_message_id=r.provider_message_id,
            status=r.status,
            provider_status=r.provider_status,
            error_code=r.error_code,
            received_at=r.received_at,
        )


class ReceiptListOut(_Out):
    """A notification's receipts, oldest first: empty until its provider reports one (not every provider
    does; see docs/providers.md)."""

    data: list[ReceiptOut]

    @classmethod
    def of(cls, receipts: Iterable[Receipt]) -> Self:
        return cls(data=[ReceiptOut.of(r) for r in receipts])


class ProviderRefOut(_Out):
    """A provider of a list, without its settings (they hold secrets)."""

    name: str
    type: str = Field(description="http, smtp, ses, twilio, fcm or apns.")


class ChannelProvidersOut(_Out):
    providers: list[ProviderRefOut] = Field(description="In failover order.")
    updated_at: datetime


class TenantProvidersOut(_Out):
    """A tenant's own providers per channel; a channel without its own (null) uses the operator's."""

    tenant_id: str
    sms: ChannelProvidersOut | None
    email: ChannelProvidersOut | None
    push: ChannelProvidersOut | None

    @classmethod
    def of(cls, tenant_id: str, stored: Mapping[Channel, StoredProviders]) -> Self:
        def channel(c: Channel) -> ChannelProvidersOut | None:
            found = stored.get(c)
            if found is None:
                return None
            entries = json.loads(found.providers)
            refs = [ProviderRefOut(name=str(e["name"]), type=str(e.get("type", "http"))) for e in entries]
            return ChannelProvidersOut(providers=refs, updated_at=found.updated_at)

        return cls(
            tenant_id=tenant_id,
            sms=channel(Channel.SMS),
            email=channel(Channel.EMAIL),
            push=channel(Channel.PUSH),
        )


class BatchSummaryOut(_Out):
    """A batch as accepted."""

    id: UUID
    total: int = Field(ge=0, description="How many notifications the batch holds.")
    idempotency_key: str | None
    created_at: datetime

    @classmethod
    def of(cls, batch: Batch) -> Self:
        return cls(
            id=batch.id, total=batch.total, idempotency_key=batch.idempotency_key, created_at=batch.created_at
        )


class BatchCountsOut(_Out):
    """How many of the batch's notifications are in each status (every status is present)."""

    scheduled: int = Field(ge=0)
    pending: int = Field(ge=0)
    processing: int = Field(ge=0)
    retrying: int = Field(ge=0)
    delivered: int = Field(ge=0)
    failed: int = Field(ge=0)
    cancelled: int = Field(ge=0)
    expired: int = Field(ge=0)


class BatchOut(BatchSummaryOut):
    """A batch with its notifications counted per status, and the summary counts clients of the seed API read
    (they add up to ``total_count``)."""

    counts: BatchCountsOut
    total_count: int = Field(ge=0, description="The same as `total`.")
    pending_count: int = Field(ge=0, description="Not finished: scheduled, pending, processing, retrying.")
    delivered_count: int = Field(ge=0)
    failed_count: int = Field(ge=0, description="Failed or expired (never sent).")
    cancelled_count: int = Field(ge=0)

    @classmethod
    def counted(cls, batch: Batch, counts: dict[Status, int]) -> Self:
        def of(*statuses: Status) -> int:
            return sum(counts.get(s, 0) for s in statuses)

        return cls(
            id=batch.id,
            total=batch.total,
            idempotency_key=batch.idempotency_key,
            created_at=batch.created_at,
            counts=BatchCountsOut(**{s.value: counts.get(s, 0) for s in Status}),
            total_count=batch.total,
            pending_count=of(*(s for s in Status if not s.is_terminal)),
            delivered_count=of(Status.DELIVERED),
            failed_count=of(Status.FAILED, Status.EXPIRED),
            cancelled_count=of(Status.CANCELLED),
        )


class BatchCreatedOut(_Out):
    """An accepted batch and its notifications, in request order."""

    batch: BatchSummaryOut
    notifications: list[NotificationOut]

    @classmethod
    def of(cls, batch: Batch, notifications: Sequence[Notification]) -> Self:
        return cls(batch=BatchSummaryOut.of(batch), notifications=NotificationOut.all(notifications))


class DeadLetterReplayOut(_Out):
    """What a dead-letter replay matched and re-queued (nothing is re-queued on a dry run)."""

    dry_run: bool
    matched: int = Field(ge=0, description="Dead letters the filter matched.")
    replayed: int = Field(ge=0, description="Re-queued by this call (at most `limit`, none on a dry run).")
    remaining: int = Field(ge=0, description="Matched but not re-queued: call again to work through them.")


class ChannelPauseOut(_Out):
    paused: bool = Field(description="True when this channel is paused, on its own or by a pause of all.")


class ChannelsPauseOut(_Out):
    sms: ChannelPauseOut
    email: ChannelPauseOut
    push: ChannelPauseOut

    @classmethod
    def of(cls, state: PauseState | DeliveryState) -> Self:
        return cls(**{c.value: ChannelPauseOut(paused=state.is_paused(c)) for c in Channel})


class PauseScopeOut(_Out):
    """The pauses one scope holder set: ``paused`` is a pause of every channel."""

    paused: bool
    channels: ChannelsPauseOut

    @classmethod
    def of(cls, state: PauseState) -> Self:
        return cls(paused=state.all_channels, channels=ChannelsPauseOut.of(state))


class DeliveryStateOut(_Out):
    """Whether workers deliver a tenant's notifications: the effective state (``paused``: every channel;
    ``channels``), made of the operator's global switch and the tenant's own pauses."""

    tenant_id: str = Field(description="The tenant this state is for.")
    paused: bool
    channels: ChannelsPauseOut
    global_: PauseScopeOut = Field(alias="global", description="The global switch: every tenant.")
    tenant: PauseScopeOut = Field(description="The tenant's own pauses.")

    @classmethod
    def of(cls, state: DeliveryState) -> Self:
        return cls.model_validate(  # by alias: "global" is a keyword
            {
                "tenant_id": state.tenant_id,
                "paused": state.paused_all,
                "channels": ChannelsPauseOut.of(state),
                "global": PauseScopeOut.of(state.everyone),
                "tenant": PauseScopeOut.of(state.tenant),
            }
        )


class ChannelMetricsOut(_Out):
    """One channel: its outcomes in the window (counted when they happen, per minute) and its queue now."""

    sent: int = Field(ge=0, description="Notifications delivered in the window.")
    failed: int = Field(
        ge=0,
        description="Notifications that failed for good in the window (one replayed and failing again counts "
        "again).",
    )
    avg_latency_ms: float | None = Field(
        ge=0,
        description="Mean time from when a delivered notification was due (created, or its scheduled_at) to "
        "when the provider accepted it. Null when nothing was delivered.",
    )
    p95_latency_ms: float | None = Field(
        ge=0,
        description="95th percentile of the same, from a latency histogram (interpolated inside its bucket, "
        "so approximate; 3600000 means one hour or more). Null when nothing was delivered.",
    )
    success_rate: float | None = Field(
        ge=0, le=1, description="sent / (sent + failed). Null when there was neither."
    )
    queue_depth: int = Field(ge=0, description="Notifications pending, processing or retrying now.")

    @classmethod
    def of(cls, c: ChannelMetrics) -> Self:
        return cls(
            sent=c.sent,
            failed=c.failed,
            avg_latency_ms=_ms(c.avg_latency_ms),
            p95_latency_ms=_ms(c.p95_latency_ms),
            success_rate=c.success_rate,
            queue_depth=c.queue_depth,
        )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class ChannelsMetricsOut(_Out):
    sms: ChannelMetricsOut
    email: ChannelMetricsOut
    push: ChannelMetricsOut


class MetricsOut(_Out):
    """Delivery metrics of the API key's tenant, per channel (every channel is present)."""

    window_s: int = Field(ge=60, le=7 * 86400, description="The window asked for, in seconds.")
    since: datetime = Field(
        description="Where the window starts: now - window_s rounded down to the whole minute. Outcomes are "
        "counted from this minute up to now."
    )
    channels: ChannelsMetricsOut

    @classmethod
    def of(cls, m: Metrics) -> Self:
        return cls(
            window_s=m.window_s,
            since=m.since,
            channels=ChannelsMetricsOut(**{c.value: ChannelMetricsOut.of(f) for c, f in m.channels.items()}),
        )


class HealthOut(_Out):
    """The process is alive."""

    status: Literal["ok"]


class LiveTokenOut(_Out):
    """A single-use token for the WebSocket, standing for the API key that asked for it."""

    token: str = Field(description="Pass as `?token=` when opening `/ws`; usable once.")
    expires_at: datetime = Field(description="Unused by then, it is worthless (a minute after it was made).")
    url: str = Field(description="The path to open: `/ws?token=...`.")


class ReadyOut(_Out):
    """Able to accept: the database answers and the unpublished outbox is under its limit. Accepting does
    not need Kafka (the outbox holds what is accepted), so Kafka and the live status reader are reported
    under ``also`` without making the API unready."""

    status: Literal["ready"]
    checks: dict[str, Literal["ok"]]
    also: dict[str, str] | None = Field(
        None, description="Reported, not required: `ok` or `unavailable: ...`."
    )


class FieldErrorOut(_Out):
    field: str = Field(description="A path into the request: recipient, notifications[7].recipient, body.")
    message: str
    code: str


class ErrorOut(_Out):
    """The one error shape of the API."""

    error: str = Field(description="A sentence for humans.")
    code: str = Field(description="A stable machine-readable code, e.g. validation_error, not_found.")
    details: list[FieldErrorOut] = Field(description="Each failing field; empty when no field is at fault.")


class TemplateOut(_Out):
    """A template: Jinja2 (sandboxed) source for a notification's content and, for email, its subject."""

    id: UUID
    name: str = Field(description="Unique per tenant.")
    channel: Channel
    subject: str | None
    body: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: Template) -> Self:
        return cls(
            id=t.id,
            name=t.name,
            channel=t.channel,
            subject=t.subject,
            body=t.body,
            created_at=t.created_at,
            updated_at=t.updated_at,
        )


class TemplatePageOut(_Out):
    """One page of templates. Pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[TemplateOut]
    next_cursor: str | None = Field(description="Null on the last page.")

    @classmethod
    def of(cls, templates: Iterable[Template], next_after_id: UUID | None) -> Self:
        return cls(
            data=[TemplateOut.of(t) for t in templates],
            next_cursor=encode_cursor(next_after_id) if next_after_id else None,
        )


class WebhookOut(_Out):
    """A webhook endpoint. Deliveries are signed with its secret (Standard Webhooks); the secret is shown
    only when the endpoint is created and when it is rotated."""

    id: UUID
    url: str
    statuses: list[Status] = Field(description="The statuses it receives; empty: every status.")
    channels: list[Channel] = Field(description="The channels it receives; empty: every channel.")
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why notify disabled it (it kept failing); null when enabled or disabled by you."
    )
    failing_since: datetime | None = Field(description="Its first failure since its last success.")
    previous_secret_valid_until: datetime | None = Field(
        description="After a rotation, the old secret also signs until then."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: WebhookEndpoint) -> Self:
        return cls(
            id=e.id,
            url=e.url,
            statuses=sorted(e.statuses),
            channels=sorted(e.channels),
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            failing_since=e.failing_since,
            previous_secret_valid_until=e.previous_secret_until,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class WebhookWithSecretOut(WebhookOut):
    secret: str = Field(description="`whsec_...`: verify deliveries with it. Shown this once.")

    @classmethod
    def of(cls, e: WebhookEndpoint) -> Self:
        return cls.model_validate({**WebhookOut.of(e).model_dump(), "secret": e.secret})


class WebhookListOut(_Out):
    data: list[WebhookOut]

    @classmethod
    def of(cls, endpoints: Iterable[WebhookEndpoint]) -> Self:
        return cls(data=[WebhookOut.of(e) for e in endpoints])


class WebhookDeliveryOut(_Out):
    """One status event for one endpoint, and how sending it went."""

    id: int
    webhook_id: str = Field(description="The `webhook-id` header: the same on every retry and replay.")
    event_id: int = Field(description="The status change's id: increasing, to order events by.")
    event_type: str = Field(description="`notification.<status>`.")
    notification_id: UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending only).")
    last_http_status: int | None = Field(description="The receiver's last answer; null: no answer.")
    last_error: str | None
    last_latency_ms: float | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: WebhookDelivery) -> Self:
        return cls(
            id=d.id,
            webhook_id=d.message_id,
            event_id=d.event_id,
            event_type=d.event_type,
            notification_id=d.notification_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status is DeliveryStatus.PENDING else None,
            last_http_status=d.last_http_status,
            last_error=d.last_error,
            last_latency_ms=d.last_latency_ms,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )


class WebhookDeliveryPageOut(_Out):
    """Newest first. Pass ``next_before`` as ``before`` for the next page."""

    data: list[WebhookDeliveryOut]
    next_before: int | None = Field(description="Null on the last page.")

    @classmethod
    def of(cls, deliveries: Sequence[WebhookDelivery], page_size: int) -> Self:
        full = len(deliveries) == page_size
        return cls(
            data=[WebhookDeliveryOut.of(d) for d in deliveries],
            next_before=deliveries[-1].id if full and deliveries else None,
        )


class WebhookAttemptOut(_Out):
    attempt: int
    started_at: datetime
    finished_at: datetime
    http_status: int | None = Field(description="The receiver's answer; null: none (timeout, refused).")
    error: str | None
    latency_ms: float


class WebhookAttemptListOut(_Out):
    """Every call made for one delivery, oldest first."""

    data: list[WebhookAttemptOut]

    @classmethod
    def of(cls, attempts: Iterable[WebhookAttempt]) -> Self:
        return cls(
            data=[
                WebhookAttemptOut(
                    attempt=a.attempt,
                    started_at=a.call.started_at,
                    finished_at=a.call.finished_at,
                    http_status=a.call.http_status,
                    error=a.call.error,
                    latency_ms=a.call.latency_ms,
                )
                for a in attempts
            ]
        )


class ErasedOut(_Out):
    """What an erasure removed: the recipient's notifications and everything kept about them."""

    notifications: int
    attempts: int
    status_changes: int
    receipts: int
    webhook_deliveries: int

    @classmethod
    def of(cls, erased: Erased) -> Self:
        return cls(
            notifications=erased.notifications,
            attempts=erased.attempts,
            status_changes=erased.status_changes,
            receipts=erased.receipts,
            webhook_deliveries=erased.webhook_deliveries,
        )
