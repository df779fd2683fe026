"""Examples of requests and answers for the OpenAPI document."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from notify.adapters.http.schemas import encode_cursor

# --- examples -----------------------------------------------------------------------------------------------

NOTIFICATION_ID = "01943a6e-5b1c-7d2e-9f30-4a5b6c7d8e9f"
BATCH_ID = "01943a6e-5b1c-7a00-8b11-223344556677"
CREATED = "2025-01-15T10:30:00.123456Z"

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

NOTIFICATION: dict[str, Any] = {
    "id": NOTIFICATION_ID,
    "batch_id": None,
    "channel": "sms",
    "recipient": "+14155550123",
    "subject": None,
    "content": "Your code is 123456",
    "priority": "high",
    "status": "pending",
    "scheduled_at": None,
    "expires_at": None,
    "idempotency_key": "order-1234-otp",
    "template_id": None,
    "template_variables": None,
    "metadata": {"order_id": "1234"},
    "attempts": 0,
    "max_retries": 5,
    "provider": None,
    "provider_message_id": None,
    "error_message": None,
    "sent_at": None,
    "failed_at": None,
    "next_attempt_at": None,
    "created_at": CREATED,
    "updated_at": CREATED,
    "sms": {"encoding": "GSM-7", "segments": 1},
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}
DELIVERED = {
    **NOTIFICATION,
    "status": "delivered",
    "attempts": 1,
    "provider": "primary",
    "provider_message_id": "msg-8f14e45f",
    "sent_at": "2025-01-15T10:30:00.412000Z",
    "updated_at": "2025-01-15T10:30:00.412000Z",
}
FAILED = {
    **NOTIFICATION,
    "status": "failed",
    "attempts": 6,
    "provider": "primary",
    "error_message": "provider refused the message: 400 invalid destination",
    "failed_at": "2025-01-15T10:41:12.000000Z",
    "updated_at": "2025-01-15T10:41:12.000000Z",
}
BATCH_SUMMARY: dict[str, Any] = {
    "id": BATCH_ID,
    "total": 2,
    "idempotency_key": "campaign-42",
    "created_at": CREATED,
}
IN_BATCH = [
    {**NOTIFICATION, "batch_id": BATCH_ID, "idempotency_key": None, "priority": "normal", "max_retries": 3},
    {
        **NOTIFICATION,
        "id": "01943a6e-5b1c-7d2e-9f30-4a5b6c7d8ea0",
        "batch_id": BATCH_ID,
        "channel": "email",
        "recipient": "ada@example.com",
        "subject": "Welcome",
        "content": "Hello Ada, welcome aboard.",
        "idempotency_key": None,
        "priority": "normal",
        "max_retries": 3,
        "sms": None,
    },
]
TEMPLATE_ID = "01943a6e-5b1c-7f00-a123-456789abcdef"
TEMPLATE: dict[str, Any] = {
    "id": TEMPLATE_ID,
    "name": "welcome",
    "channel": "email",
    "subject": "Welcome, {{ name }}",
    "body": "Hello {{ name }}, your account is ready.",
    "created_at": CREATED,
    "updated_at": CREATED,
}
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
