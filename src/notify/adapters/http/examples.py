"""Examples of requests and answers for the OpenAPI document."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from notify.adapters.http.schemas import batch_json, encode_cursor, notification_json
from notify.adapters.http.templates import template_json
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.templates import Template

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

# Answers are built from domain objects by the very functions the handlers answer with, so an example shows
# exactly what is sent.
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

NOTIFICATION = notification_json(_SMS)
DELIVERED = notification_json(
    replace(
        _SMS,
        status=Status.DELIVERED,
        attempts=1,
        provider="primary",
        provider_message_id="msg-8f14e45f",
        sent_at=_SENT_AT,
        updated_at=_SENT_AT,
    )
)
FAILED = notification_json(
    replace(
        _SMS,
        status=Status.FAILED,
        attempts=6,
        provider="primary",
        error_message="provider refused the message: 400 invalid destination",
        failed_at=_FAILED_AT,
        updated_at=_FAILED_AT,
    )
)
BATCH_SUMMARY = batch_json(_BATCH)
IN_BATCH = [
    notification_json(_IN_BATCH),
    notification_json(
        replace(
            _IN_BATCH,
            id=UUID("01943a6e-5b1c-7d2e-9f30-4a5b6c7d8ea0"),
            channel=Channel.EMAIL,
            recipient="ada@example.com",
            subject="Welcome",
            content="Hello Ada, welcome aboard.",
        )
    ),
]
TEMPLATE_ID = "01943a6e-5b1c-7f00-a123-456789abcdef"
TEMPLATE = template_json(
    Template(
        id=UUID(TEMPLATE_ID),
        tenant_id="acme",
        name="welcome",
        channel=Channel.EMAIL,
        body="Hello {{ name }}, your account is ready.",
        subject="Welcome, {{ name }}",
        created_at=_AT,
        updated_at=_AT,
    )
)
BATCH_CREATED: dict[str, Any] = {"batch": BATCH_SUMMARY, "notifications": IN_BATCH}
PAGE = {"data": [DELIVERED], "next_cursor": encode_cursor(UUID(NOTIFICATION_ID))}
METRICS: dict[str, Any] = {
    "window_s": 3600,
    "since": "2025-01-15T09:30:00Z",
    "channels": {
        "sms": {
            "sent": 1180,
            "failed": 12,
            "avg_latency_ms": 184.213,
            "p95_latency_ms": 512.5,
            "success_rate": 0.9899328859060402,
            "queue_depth": 3,
        },
        "email": {
            "sent": 40,
            "failed": 0,
            "avg_latency_ms": 95.06,
            "p95_latency_ms": 140.0,
            "success_rate": 1.0,
            "queue_depth": 0,
        },
        "push": {
            "sent": 0,
            "failed": 0,
            "avg_latency_ms": None,
            "p95_latency_ms": None,
            "success_rate": None,
            "queue_depth": 0,
        },
    },
}
DELIVERY_STATE = {
    "tenant_id": "acme",
    "paused": False,
    "channels": {"sms": {"paused": True}, "email": {"paused": False}, "push": {"paused": False}},
    "global": {
        "paused": False,
        "channels": {"sms": {"paused": False}, "email": {"paused": False}, "push": {"paused": False}},
    },
    "tenant": {
        "paused": False,
        "channels": {"sms": {"paused": True}, "email": {"paused": False}, "push": {"paused": False}},
    },
}
