"""Examples of requests and answers for the OpenAPI document. Answers are built from domain objects by the
response models the handlers answer with, so an example shows exactly what is sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from notify.adapters.http.responses import (
    AttemptListOut,
    BatchCreatedOut,
    BatchOut,
    BatchSummaryOut,
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
    TemplateOut,
    TenantProvidersOut,
    TimelineOut,
    WebhookAttemptListOut,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookListOut,
    WebhookOut,
    WebhookWithSecretOut,
)
from notify.app.operations import DeliveryState
from notify.app.stats import ChannelMetrics, Metrics
from notify.domain.delivery import AttemptOutcome, AttemptRecord
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.pauses import PauseState
from notify.domain.queries import Page
from notify.domain.receipts import Receipt, ReceiptStatus
from notify.domain.retention import Erased
from notify.domain.templates import Template
from notify.domain.timeline import StatusChange, timeline
from notify.domain.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookCall,
    WebhookDelivery,
    WebhookEndpoint,
)
from notify.ports.tenant_providers import StoredProviders

# --- examples -----------------------------------------------------------------------------------------------

NOTIFICATION_ID = "01943a6e-5b1c-7d2e-9f30-4a5b6c7d8e9f"
BATCH_ID = "01943a6e-5b1c-7a00-8b11-223344556677"

SMS_IN: dict[str, Any] = {
    "channel": "sms",
    "recipient": "+14155550123",
    "content": "Your code is 123456",
    "priority": "high",
    "metadata": {"order_id": "1234"},
}
EMAIL_IN: dict[str, Any] = {
    "channel": "email",
    "recipient": "ada@example.com",
    "subject": "Welcome",
    "content": "Hello Ada, welcome aboard.",
}
FROM_TEMPLATE_IN: dict[str, Any] = {
    "channel": "email",
    "recipient": "ada@example.com",
    "template_id": "01943a6e-5b1c-7f00-a123-456789abcdef",
    "template_variables": {"name": "Ada"},
}
PUSH_IN: dict[str, Any] = {
    "channel": "push",
    "recipient": "fcm-token-abc123",
    "content": "Your order has shipped",
    "priority": "low",
    "scheduled_at": "2030-01-01T09:00:00Z",
}


def example(answer: BaseModel) -> Any:
    """An answer as it is sent (JSON types, aliases)."""
    return answer.model_dump(mode="json")


_AT = datetime(2025, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)
_SMS = Notification(
    id=UUID(NOTIFICATION_ID),
    tenant_id="acme",
    channel=Channel.SMS,
    recipient="+14155550123",
    content="Your code is 123456",
    priority=Priority.HIGH,
    status=Status.PENDING,
    created_at=_AT,
    updated_at=_AT,
    idempotency_key="order-1234-otp",
    metadata={"order_id": "1234"},
    max_retries=5,
    trace_context="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
)
_SENT_AT = datetime(2025, 1, 15, 10, 30, 0, 412000, tzinfo=UTC)
_FAILED_AT = datetime(2025, 1, 15, 10, 41, 12, tzinfo=UTC)
_BATCH = Batch(id=UUID(BATCH_ID), tenant_id="acme", total=2, created_at=_AT, idempotency_key="campaign-42")
_IN_BATCH = replace(_SMS, batch_id=_BATCH.id, idempotency_key=None, priority=Priority.NORMAL, max_retries=3)

_DELIVERED = replace(
    _SMS,
    status=Status.DELIVERED,
    attempts=1,
    provider="primary",
    provider_message_id="msg-8f14e45f",
    sent_at=_SENT_AT,
    updated_at=_SENT_AT,
)
_FAILED = replace(
    _SMS,
    status=Status.FAILED,
    attempts=6,
    provider="primary",
    error_message="provider refused the message: 400 invalid destination",
    failed_at=_FAILED_AT,
    updated_at=_FAILED_AT,
)
_BATCHED = [
    _IN_BATCH,
    replace(
        _IN_BATCH,
        id=UUID("01943a6e-5b1c-7d2e-9f30-4a5b6c7d8ea0"),
        channel=Channel.EMAIL,
        recipient="ada@example.com",
        subject="Welcome",
        content="Hello Ada, welcome aboard.",
    ),
]
TEMPLATE_ID = "01943a6e-5b1c-7f00-a123-456789abcdef"
_TEMPLATE = Template(
    id=UUID(TEMPLATE_ID),
    tenant_id="acme",
    name="welcome",
    channel=Channel.EMAIL,
    body="Hello {{ name }}, your account is ready.",
    subject="Welcome, {{ name }}",
    created_at=_AT,
    updated_at=_AT,
)


def _channel(sent: int, failed: int, avg: float | None, p95: float | None, queue: int) -> ChannelMetrics:
    rate = sent / (sent + failed) if sent + failed else None
    return ChannelMetrics(sent, failed, avg, p95, rate, queue)


_NOBODY = PauseState("*", all_channels=False, channels=frozenset())

NOTIFICATION = example(NotificationOut.of(_SMS))
DELIVERED = example(NotificationOut.of(_DELIVERED))
FAILED = example(NotificationOut.of(_FAILED))
BATCH_SUMMARY = example(BatchSummaryOut.of(_BATCH))
BATCH = example(BatchOut.counted(_BATCH, {Status.DELIVERED: 1, Status.PENDING: 1}))
BATCH_CREATED = example(BatchCreatedOut.of(_BATCH, _BATCHED))
PAGE = example(PageOut.of(Page([_DELIVERED], next_after_id=_SMS.id)))
BATCH_PAGE = example(PageOut.of(Page(_BATCHED[::-1], next_after_id=None)))
DEAD_LETTERS = example(PageOut.of(Page([_FAILED], next_after_id=None)))
DEAD_LETTER_REPLAY = example(DeadLetterReplayOut(dry_run=False, matched=1200, replayed=1000, remaining=200))
_TOKEN = "ntl_3q2-7wEvFy8kY1cI5u0dJm3xq4R0bZlK8sPe1n0aT2g"
_TOKEN_EXPIRES = datetime(2025, 1, 15, 10, 31, tzinfo=UTC)
LIVE_TOKEN = example(LiveTokenOut(token=_TOKEN, expires_at=_TOKEN_EXPIRES, url=f"/ws?token={_TOKEN}"))
RECEIPTS = example(
    ReceiptListOut.of(
        [
            Receipt(
                "twilio", "SM5ef8732a3c49700934481addd5ce1659", ReceiptStatus.IN_TRANSIT, "sent", _SENT_AT
            ),
            Receipt(
                "twilio",
                "SM5ef8732a3c49700934481addd5ce1659",
                ReceiptStatus.DELIVERED,
                "delivered",
                datetime(2025, 1, 15, 10, 30, 3, tzinfo=UTC),
            ),
        ]
    )
)
TENANT_PROVIDERS = example(
    TenantProvidersOut.of(
        "acme",
        {Channel.SMS: StoredProviders('[{"type": "twilio", "name": "our-twilio"}]', _AT)},
    )
)
TIMELINE = example(
    TimelineOut.of(
        timeline(
            _AT,
            Status.DELIVERED,
            [
                StatusChange(
                    Status.PROCESSING, Status.PENDING, 1, datetime(2025, 1, 15, 10, 30, 0, 301000, UTC)
                ),
                StatusChange(
                    Status.RETRYING,
                    Status.PROCESSING,
                    1,
                    _AT.replace(microsecond=350000),
                    "primary: HTTP 503: unavailable",
                    "primary",
                ),
                StatusChange(
                    Status.PROCESSING, Status.RETRYING, 2, datetime(2025, 1, 15, 10, 30, 1, 402000, UTC)
                ),
                StatusChange(
                    Status.DELIVERED, Status.PROCESSING, 2, _SENT_AT.replace(second=1), None, "primary"
                ),
            ],
        )
    )
)
HEALTHY = example(HealthOut(status="ok"))
READY = example(
    ReadyOut(
        status="ready",
        checks={"database": "ok", "accepting": "ok"},
        also={"kafka": "unavailable: Unavailable", "status_topic": "unavailable: TimeoutError"},
    )
)
TEMPLATE = example(TemplateOut.of(_TEMPLATE))
ATTEMPTS = example(
    AttemptListOut.of(
        [
            AttemptRecord(
                attempt=1,
                provider="primary",
                started_at=_AT,
                finished_at=_SENT_AT,
                outcome=AttemptOutcome.DELIVERED,
                http_status=202,
            )
        ]
    )
)
METRICS = example(
    MetricsOut.of(
        Metrics(
            window_s=3600,
            since=datetime(2025, 1, 15, 9, 30, tzinfo=UTC),
            channels={
                Channel.SMS: _channel(1180, 12, 184.213, 512.5, 3),
                Channel.EMAIL: _channel(40, 0, 95.06, 140.0, 0),
                Channel.PUSH: _channel(0, 0, None, None, 0),
            },
        )
    )
)
DELIVERY_STATE = example(
    DeliveryStateOut.of(
        DeliveryState(
            tenant_id="acme",
            everyone=_NOBODY,
            tenant=PauseState("acme", all_channels=False, channels=frozenset({Channel.SMS})),
        )
    )
)
RESUMED = example(
    DeliveryStateOut.of(
        DeliveryState(
            tenant_id="acme",
            everyone=_NOBODY,
            tenant=PauseState("acme", all_channels=False, channels=frozenset()),
        )
    )
)

WEBHOOK_ID = "01943a6e-5b1c-7f00-a123-4567890abc00"
_WEBHOOK = WebhookEndpoint(
    id=UUID(WEBHOOK_ID),
    tenant_id="acme",
    url="https://example.com/hooks/notify",
    statuses=frozenset({Status.DELIVERED, Status.FAILED}),
    channels=frozenset(),
    enabled=True,
    secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    created_at=_AT,
    updated_at=_AT,
)
WEBHOOK = example(WebhookOut.of(_WEBHOOK))
WEBHOOK_WITH_SECRET = example(WebhookWithSecretOut.of(_WEBHOOK))
WEBHOOK_LIST = example(WebhookListOut.of([_WEBHOOK]))
_WEBHOOK_DELIVERY = WebhookDelivery(
    id=1042,
    endpoint_id=UUID(WEBHOOK_ID),
    notification_id=UUID(NOTIFICATION_ID),
    event_id=88231,
    payload={"status": "delivered"},
    status=DeliveryStatus.DELIVERED,
    attempts=1,
    created_at=_SENT_AT,
    last_http_status=204,
    last_latency_ms=41.7,
    delivered_at=_SENT_AT,
)
WEBHOOK_DELIVERY = example(WebhookDeliveryOut.of(_WEBHOOK_DELIVERY))
WEBHOOK_DELIVERIES = example(WebhookDeliveryPageOut.of([_WEBHOOK_DELIVERY], 20))
WEBHOOK_ATTEMPTS = example(
    WebhookAttemptListOut.of(
        [
            WebhookAttempt(1, WebhookCall(_AT, _SENT_AT, 503, "HTTP 503: down for maintenance")),
            WebhookAttempt(2, WebhookCall(_SENT_AT, _SENT_AT, 204)),
        ]
    )
)
ERASED = example(
    ErasedOut.of(Erased(notifications=3, attempts=4, status_changes=6, receipts=1, webhook_deliveries=2))
)
