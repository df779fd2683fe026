"""The OpenAPI 3.1 document of the HTTP API, and Swagger UI to read it.

Request bodies and query parameters are generated from the very pydantic models the handlers validate with
(``schemas.py``), so the document cannot drift from what the API accepts. Responses are described by the
``*Out`` models below: they exist only for documentation, and ``tests/integration/test_openapi.py`` plus the
schemathesis run check that they match what the handlers really send.

Swagger UI is served from the copy packaged in ``swagger-ui-bundle-v2`` (Swagger UI 5, the first major
version that renders OpenAPI 3.1): ``/docs`` loads nothing from any other origin.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import notify
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
    encode_cursor,
    summary_counts,
)
from notify.adapters.http.templates import TemplateIn, TemplateListParams
from notify.domain.model import Channel, Priority, Status
from notify.ports.store import AttemptOutcome

log = logging.getLogger(__name__)

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_INIT_PATH = "/docs/init.js"
DOCS_STATIC_PREFIX = "/docs/static"

# --- response models (documentation only; they mirror notification_json, batch_json, ... exactly) -----------


class _Out(BaseModel):
    # extra="forbid" becomes additionalProperties: false, so a key a handler adds without documenting it
    # fails the response-schema checks instead of slipping through.
    model_config = ConfigDict(extra="forbid")


class SmsInfoOut(_Out):
    """How an SMS is encoded and how many parts it needs (null for other channels)."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int = Field(ge=1)


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


class PageOut(_Out):
    """One page of notifications, oldest first. Pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[NotificationOut]
    next_cursor: str | None = Field(description="Null on the last page.")


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


class AttemptListOut(_Out):
    """The delivery attempts of one notification, in order."""

    data: list[AttemptOut]


class BatchSummaryOut(_Out):
    """A batch as accepted."""

    id: UUID
    total: int = Field(ge=0, description="How many notifications the batch holds.")
    idempotency_key: str | None
    created_at: datetime


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


class BatchCreatedOut(_Out):
    """An accepted batch and its notifications, in request order."""

    batch: BatchSummaryOut
    notifications: list[NotificationOut]


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


class PauseScopeOut(_Out):
    """The pauses one scope holder set: ``paused`` is a pause of every channel."""

    paused: bool
    channels: ChannelsPauseOut


class DeliveryStateOut(_Out):
    """Whether workers deliver a tenant's notifications: the effective state (``paused``: every channel;
    ``channels``), made of the operator's global switch and the tenant's own pauses."""

    tenant_id: str = Field(description="The tenant this state is for.")
    paused: bool
    channels: ChannelsPauseOut
    global_: PauseScopeOut = Field(alias="global", description="The global switch: every tenant.")
    tenant: PauseScopeOut = Field(description="The tenant's own pauses.")


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


class TemplatePageOut(_Out):
    """One page of templates. Pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[TemplateOut]
    next_cursor: str | None = Field(description="Null on the last page.")


# --- examples -----------------------------------------------------------------------------------------------

_NOTIFICATION_ID = "01943a6e-5b1c-7d2e-9f30-4a5b6c7d8e9f"
_BATCH_ID = "01943a6e-5b1c-7a00-8b11-223344556677"
_CREATED = "2025-01-15T10:30:00.123456Z"

_SMS_IN: dict[str, Any] = {
    "channel": "sms",
    "recipient": "+14155550123",
    "content": "Your code is 123456",
    "priority": "high",
    "metadata": {"order_id": "1234"},
}
_EMAIL_IN: dict[str, Any] = {
    "channel": "email",
    "recipient": "ada@example.com",
    "subject": "Welcome",
    "content": "Hello Ada, welcome aboard.",
}
_FROM_TEMPLATE_IN: dict[str, Any] = {
    "channel": "email",
    "recipient": "ada@example.com",
    "template_id": "01943a6e-5b1c-7f00-a123-456789abcdef",
    "template_variables": {"name": "Ada"},
}
_PUSH_IN: dict[str, Any] = {
    "channel": "push",
    "recipient": "fcm-token-abc123",
    "content": "Your order has shipped",
    "priority": "low",
    "scheduled_at": "2030-01-01T09:00:00Z",
}

_NOTIFICATION: dict[str, Any] = {
    "id": _NOTIFICATION_ID,
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
    "created_at": _CREATED,
    "updated_at": _CREATED,
    "sms": {"encoding": "GSM-7", "segments": 1},
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
}
_DELIVERED = {
    **_NOTIFICATION,
    "status": "delivered",
    "attempts": 1,
    "provider": "primary",
    "provider_message_id": "msg-8f14e45f",
    "sent_at": "2025-01-15T10:30:00.412000Z",
    "updated_at": "2025-01-15T10:30:00.412000Z",
}
_FAILED = {
    **_NOTIFICATION,
    "status": "failed",
    "attempts": 6,
    "provider": "primary",
    "error_message": "provider refused the message: 400 invalid destination",
    "failed_at": "2025-01-15T10:41:12.000000Z",
    "updated_at": "2025-01-15T10:41:12.000000Z",
}
_BATCH_SUMMARY: dict[str, Any] = {
    "id": _BATCH_ID,
    "total": 2,
    "idempotency_key": "campaign-42",
    "created_at": _CREATED,
}
_IN_BATCH = [
    {**_NOTIFICATION, "batch_id": _BATCH_ID, "idempotency_key": None, "priority": "normal", "max_retries": 3},
    {
        **_NOTIFICATION,
        "id": "01943a6e-5b1c-7d2e-9f30-4a5b6c7d8ea0",
        "batch_id": _BATCH_ID,
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
_TEMPLATE_ID = "01943a6e-5b1c-7f00-a123-456789abcdef"
_TEMPLATE: dict[str, Any] = {
    "id": _TEMPLATE_ID,
    "name": "welcome",
    "channel": "email",
    "subject": "Welcome, {{ name }}",
    "body": "Hello {{ name }}, your account is ready.",
    "created_at": _CREATED,
    "updated_at": _CREATED,
}
_BATCH_CREATED: dict[str, Any] = {"batch": _BATCH_SUMMARY, "notifications": _IN_BATCH}
_PAGE = {"data": [_DELIVERED], "next_cursor": encode_cursor(UUID(_NOTIFICATION_ID))}
_METRICS: dict[str, Any] = {
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
_DELIVERY_STATE = {
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


def _error(code: str, message: str, *details: tuple[str, str, str]) -> dict[str, Any]:
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
        400,
        "The input is invalid: each failing field is named in `details`. Malformed JSON is a 400 as well.",
        {
            "invalid field": _error(
                "validation_error",
                "Invalid input: recipient.",
                (
                    "recipient",
                    "must be a phone number in E.164 format, e.g. +14155550123",
                    "invalid_phone_number",
                ),
            ),
            "malformed JSON": _error(
                "validation_error",
                "The request body is not valid JSON.",
                ("body", "Invalid JSON: EOF while parsing an object at line 1 column 1", "invalid_json"),
            ),
        },
    ),
    "Unauthorized": ErrorResponse(
        401,
        "No API key, or an unknown or revoked one.",
        {"no key": _error("unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")},
        ("WWW-Authenticate",),
    ),
    "NotFound": ErrorResponse(
        404,
        "No such object for this API key's tenant.",
        {"not found": _error("not_found", f"Notification {_NOTIFICATION_ID} was not found.")},
    ),
    "Conflict": ErrorResponse(
        409,
        "The request contradicts the current state: an idempotency key reused with another payload, or a "
        "status change the notification's status does not allow.",
        {
            "idempotency key reused": _error(
                "conflict", "The idempotency key 'order-1234-otp' was already used with a different request."
            ),
            "illegal transition": _error(
                "illegal_transition", "A notification in status 'delivered' cannot become 'cancelled'."
            ),
        },
    ),
    "PayloadTooLarge": ErrorResponse(
        413,
        "The request body is larger than the server accepts.",
        {"too large": _error("payload_too_large", "The request body is larger than this server accepts.")},
    ),
    "TooManyRequests": ErrorResponse(
        429,
        "The API key is over its request rate: retry after `Retry-After` seconds.",
        {"rate limited": _error("rate_limited", "This API key is limited to 200 requests per second.")},
        ("Retry-After",),
    ),
    "Forbidden": ErrorResponse(
        403,
        "The API key may not do this: acting beyond its tenant (the global delivery switch, another tenant) "
        "needs an admin key (`notify keys create --admin`).",
        {
            "not an admin": _error(
                "forbidden", "Pausing or resuming delivery for every tenant needs an admin API key."
            )
        },
    ),
    "Unavailable": ErrorResponse(
        503,
        "A dependency is unavailable or the service is shedding load: retry after `Retry-After` seconds.",
        {"unavailable": _error("unavailable", "The service is unavailable; try again shortly.")},
        ("Retry-After",),
    ),
    # Readiness answers 503 with a body of its own and no Retry-After.
    "NotReady": ErrorResponse(
        503,
        "A dependency does not answer; `details` names each one.",
        {
            "kafka down": _error(
                "not_ready",
                "A dependency is not available.",
                ("database", "ok", "unavailable"),
                ("kafka", "unavailable: KafkaConnectionError", "unavailable"),
            )
        },
    ),
}

# --- the table of operations --------------------------------------------------------------------------------

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


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


# Every /api/v1 route: no or bad key (401), over the key's rate (429), dependency down or shedding load (503).
_API = frozenset({"Unauthorized", "TooManyRequests", "Unavailable"})
_WITH_ID = _API | {"BadRequest", "NotFound"}  # BadRequest: the {id} is not a UUID
_WITH_BODY = _API | {"BadRequest", "PayloadTooLarge"}
_LOCATION = "Location"
_REPLAYED = "Idempotent-Replayed"


def _notification_operations() -> dict[tuple[Method, str], Operation]:
    return {
        ("POST", "/api/v1/notifications"): Operation(
            "createNotification",
            "Create a notification",
            "notifications",
            (
                Success(201, NotificationOut, "Accepted for delivery.", _NOTIFICATION, (_LOCATION,)),
                Success(
                    200,
                    NotificationOut,
                    "The same Idempotency-Key and payload were accepted before: the original answer.",
                    _NOTIFICATION,
                    (_LOCATION, _REPLAYED),
                ),
            ),
            _WITH_BODY | {"Conflict"},
            description=(
                "Validates every field (sms: E.164 recipient, content up to 1600 characters; email: valid "
                "address, content up to 100 000 characters; push: token of 1 to 4096 characters, content up "
                "to 4096 characters) and reports each failing one. `content` may be left out when "
                "`template_id` is given. The same `Idempotency-Key` with a different payload is a 409."
            ),
            body=Body(
                NotificationIn,
                {
                    "sms": _SMS_IN,
                    "email": _EMAIL_IN,
                    "scheduled push": _PUSH_IN,
                    "from a template": _FROM_TEMPLATE_IN,
                },
            ),
            idempotency_header=True,
        ),
        ("POST", "/api/v1/notifications/batch"): Operation(
            "createBatch",
            "Create 1 to 1000 notifications at once",
            "batches",
            (
                Success(
                    201, BatchCreatedOut, "Every notification was accepted.", _BATCH_CREATED, (_LOCATION,)
                ),
                Success(
                    200,
                    BatchCreatedOut,
                    "The same Idempotency-Key and batch were accepted before: the original answer.",
                    _BATCH_CREATED,
                    (_LOCATION, _REPLAYED),
                ),
            ),
            _WITH_BODY | {"Conflict"},
            description=(
                "All or nothing: every item is checked and every failure reported (as "
                "`notifications[7].recipient`) before anything is stored."
            ),
            body=Body(BatchIn, {"two channels": {"notifications": [_SMS_IN, _EMAIL_IN]}}),
            idempotency_header=True,
        ),
        ("GET", "/api/v1/notifications"): Operation(
            "listNotifications",
            "List notifications",
            "notifications",
            (Success(200, PageOut, "One page, oldest first.", _PAGE),),
            _API | {"BadRequest"},
            description="Filters combine with AND. `date_from` and `date_to` bound `created_at`.",
            query=ListParams,
        ),
        ("GET", "/api/v1/notifications/{id}"): Operation(
            "getNotification",
            "Get a notification",
            "notifications",
            (Success(200, NotificationOut, "The notification.", _DELIVERED),),
            _WITH_ID,
            path_id="notification id",
        ),
        ("PATCH", "/api/v1/notifications/{id}/cancel"): Operation(
            "cancelNotification",
            "Cancel a notification",
            "notifications",
            (Success(200, NotificationOut, "Cancelled.", {**_NOTIFICATION, "status": "cancelled"}),),
            _WITH_ID | {"Conflict"},
            description="Only from pending, scheduled or retrying; any other status is a 409.",
            path_id="notification id",
        ),
        ("GET", "/api/v1/notifications/{id}/attempts"): Operation(
            "listAttempts",
            "The delivery attempts of a notification",
            "notifications",
            (
                Success(
                    200,
                    AttemptListOut,
                    "Every provider call, in order.",
                    {
                        "data": [
                            {
                                "attempt": 1,
                                "provider": "primary",
                                "started_at": "2025-01-15T10:30:00.301000Z",
                                "finished_at": "2025-01-15T10:30:00.412000Z",
                                "outcome": "delivered",
                                "http_status": 200,
                                "error": None,
                                "latency_ms": 111.0,
                                "breaker_trial": False,
                            }
                        ]
                    },
                ),
            ),
            _WITH_ID,
            path_id="notification id",
        ),
        ("POST", "/api/v1/notifications/{id}/replay"): Operation(
            "replayNotification",
            "Re-queue a failed or expired notification",
            "notifications",
            (
                Success(
                    200,
                    NotificationOut,
                    "Queued again, with fresh retries.",
                    {**_FAILED, "status": "pending", "failed_at": None, "error_message": None},
                ),
            ),
            _WITH_ID | {"Conflict"},
            description="Only failed or expired notifications can be replayed; any other status is a 409.",
            path_id="notification id",
        ),
    }


def _batch_operations() -> dict[tuple[Method, str], Operation]:
    counts = {Status.DELIVERED: 1, Status.PENDING: 1}
    batch = {**_BATCH_SUMMARY, "counts": {s.value: counts.get(s, 0) for s in Status}}
    return {
        ("GET", "/api/v1/batches/{id}"): Operation(
            "getBatch",
            "Get a batch with its notifications counted per status",
            "batches",
            (Success(200, BatchOut, "The batch.", batch | summary_counts(2, counts)),),
            _WITH_ID,
            path_id="batch id",
        ),
        ("GET", "/api/v1/batches/{id}/notifications"): Operation(
            "listBatchNotifications",
            "List a batch's notifications",
            "batches",
            (Success(200, PageOut, "One page, in batch order.", {"data": _IN_BATCH, "next_cursor": None}),),
            _WITH_ID,
            query=BatchPageParams,
            path_id="batch id",
        ),
    }


def _operations_operations() -> dict[tuple[Method, str], Operation]:
    replay_body = {
        "dry run for one provider": {"provider": "primary", "dry_run": True},
        "every sms since a date": {"channel": "sms", "date_from": "2025-01-01T00:00:00Z"},
    }
    scope = {
        "one channel (a tenant key: its tenant; an admin key: everyone)": {"channel": "sms"},
        "every channel": {},
        "the global switch, explicitly (admin keys only)": {"scope": "global"},
        "another tenant (admin keys only)": {"tenant_id": "acme", "channel": "email"},
    }
    return {
        ("GET", "/api/v1/dead-letters"): Operation(
            "listDeadLetters",
            "List failed notifications",
            "operations",
            (
                Success(
                    200,
                    PageOut,
                    "One page of failed notifications, oldest first.",
                    {"data": [_FAILED], "next_cursor": None},
                ),
            ),
            _API | {"BadRequest"},
            description="`error` matches a substring of `error_message`.",
            query=DeadLetterParams,
        ),
        ("POST", "/api/v1/dead-letters/replay"): Operation(
            "replayDeadLetters",
            "Re-queue every failed notification a filter matches",
            "operations",
            (
                Success(
                    200,
                    DeadLetterReplayOut,
                    "How many matched, and how many were re-queued.",
                    {"dry_run": False, "matched": 1200, "replayed": 1000, "remaining": 200},
                ),
            ),
            _WITH_BODY,
            description="No body (or `{}`) matches every failed notification of the API key's tenant.",
            body=Body(
                DeadLetterReplayIn, replay_body, required=False, description="A filter; none: every one."
            ),
        ),
        ("GET", "/api/v1/delivery"): Operation(
            "getDelivery",
            "Whether delivery is paused",
            "operations",
            (Success(200, DeliveryStateOut, "The delivery state every worker honours.", _DELIVERY_STATE),),
            _API | {"BadRequest", "Forbidden"},
            description="The API key's tenant; an admin key may ask for another with `tenant_id`.",
            query=DeliveryParams,
        ),
        ("POST", "/api/v1/delivery/pause"): Operation(
            "pauseDelivery",
            "Pause delivery of one channel, or of all",
            "operations",
            (Success(200, DeliveryStateOut, "The delivery state after the pause.", _DELIVERY_STATE),),
            _WITH_BODY | {"Forbidden"},
            description=(
                "Workers stop claiming the scope's notifications; they wait as `pending` (never failed or "
                "expired early) until resumed. A tenant key pauses its own tenant's traffic; the global "
                "switch (every tenant) and another tenant need an admin key (403 otherwise)."
            ),
            body=Body(ChannelScopeIn, scope, required=False, description="Which channel, whose traffic."),
        ),
        ("GET", "/api/v1/metrics"): Operation(
            "getMetrics",
            "Delivery metrics per channel",
            "operations",
            (Success(200, MetricsOut, "The API key's tenant's metrics, every channel present.", _METRICS),),
            _API | {"BadRequest"},
            description=(
                "Per channel: notifications delivered and failed in the window, the mean and 95th percentile "
                "latency of the delivered ones, the success rate, and the queue depth now. Outcomes are "
                "counted per minute as they happen (no scan of the notifications), so the window is rounded "
                "to whole minutes: it starts at `since`, the minute at or before now - `window_s`."
            ),
            query=MetricsParams,
        ),
        ("POST", "/api/v1/delivery/resume"): Operation(
            "resumeDelivery",
            "Resume delivery of one channel, or of all",
            "operations",
            (
                Success(
                    200,
                    DeliveryStateOut,
                    "The delivery state after resuming.",
                    {**_DELIVERY_STATE, "channels": {c.value: {"paused": False} for c in Channel}},
                ),
            ),
            _WITH_BODY | {"Forbidden"},
            body=Body(ChannelScopeIn, scope, required=False, description="Which channel, whose traffic."),
        ),
    }


_PROMETHEUS_EXAMPLE = """# HELP notify_notifications_accepted_total Notifications accepted (stored)
# TYPE notify_notifications_accepted_total counter
notify_notifications_accepted_total{channel="sms",priority="high"} 42.0
"""


def _observability_operations() -> dict[tuple[Method, str], Operation]:
    return {
        ("GET", "/metrics"): Operation(
            "prometheusMetrics",
            "Prometheus metrics of this process",
            "health",
            (
                Success(
                    200,
                    None,
                    "Prometheus text exposition format. The worker serves the same on its own port.",
                    None,
                    content={"text/plain": {"schema": {"type": "string"}, "example": _PROMETHEUS_EXAMPLE}},
                ),
            ),
            frozenset(),
            open=True,
            description=(
                "HTTP requests and latency by route and status, notifications accepted by channel and "
                "priority, outbox backlog, WebSocket clients; on the worker also deliveries by channel, "
                "provider and outcome, accepted-to-delivered latency, attempts, retries, breaker states, "
                "rate-limiter waits and consumer lag."
            ),
        ),
        ("GET", "/ws"): Operation(
            "liveStatus",
            "Live status events (WebSocket)",
            "notifications",
            (
                Success(
                    101,
                    None,
                    'Switching to the WebSocket protocol. Send `{"action": "subscribe", '
                    '"notification_ids": [...], "batch_ids": [...], "channels": [...]}` to narrow '
                    "what you receive (each subscribe replaces the last; without one, every event of your "
                    'tenant). Each event is one text frame: `{"notification_id", "batch_id", '
                    '"channel", "status", "previous_status", "attempt", "error", '
                    '"provider", "next_attempt_at", "timestamp"}` (`next_attempt_at` on `retrying` events). '
                    "A client that falls more than the buffer behind is closed with code 1013.",
                    None,
                ),
            ),
            frozenset({"Unauthorized", "BadRequest", "TooManyRequests", "Unavailable"}),
            description=(
                "Authenticate with `Authorization: Bearer <key>`, or, where a client cannot set headers "
                "(browsers), with `?token=` from `POST /api/v1/live/tokens`: an API key is never accepted in "
                "a URL (400). A key has a bounded number of streams open at once (429 past it); the stream "
                "of a revoked key is closed with 1008. A request that is not a WebSocket upgrade is a 400."
            ),
        ),
        ("POST", "/api/v1/live/tokens"): Operation(
            "createLiveToken",
            "A single-use token for the WebSocket",
            "notifications",
            (
                Success(
                    201,
                    LiveTokenOut,
                    "A token valid for one connection within a minute.",
                    {
                        "token": "ntl_3q2-7wEvFy8kY1cI5u0dJm3xq4R0bZlK8sPe1n0aT2g",
                        "expires_at": "2025-01-15T10:31:00Z",
                        "url": "/ws?token=ntl_3q2-7wEvFy8kY1cI5u0dJm3xq4R0bZlK8sPe1n0aT2g",
                    },
                ),
            ),
            _API,
            description=(
                "For browsers, which cannot set headers on a WebSocket: ask for a token with the API key "
                "(from your server, or a same-origin page), then open `/ws?token=...`. The token is usable "
                "once, within a minute, and the stream acts for the key that asked for it."
            ),
        ),
    }


def _health_operations() -> dict[tuple[Method, str], Operation]:
    return {
        ("GET", "/health"): Operation(
            "health",
            "Liveness",
            "health",
            (Success(200, HealthOut, "The process is up.", {"status": "ok"}),),
            frozenset(),
            open=True,
        ),
        ("GET", "/health/ready"): Operation(
            "ready",
            "Readiness: able to accept notifications",
            "health",
            (
                Success(
                    200,
                    ReadyOut,
                    "Ready to serve.",
                    {
                        "status": "ready",
                        "checks": {"database": "ok", "accepting": "ok"},
                        "also": {
                            "kafka": "unavailable: Unavailable",
                            "status_topic": "unavailable: TimeoutError",
                        },
                    },
                ),
            ),
            frozenset({"NotReady"}),
            open=True,
        ),
    }


def operations() -> dict[tuple[Method, str], Operation]:
    """Every documented (method, path). Paths are in aiohttp's canonical form, which OpenAPI shares."""
    return {
        **_health_operations(),
        **_observability_operations(),
        **_notification_operations(),
        **_batch_operations(),
        **_operations_operations(),
        **_template_operations(),
    }


def _template_operations() -> dict[tuple[Method, str], Operation]:
    template_body = {
        "email": {
            "name": "welcome",
            "channel": "email",
            "subject": "Welcome, {{ name }}",
            "body": "Hello {{ name }}, your account is ready.",
        },
        "sms": {"name": "otp", "channel": "sms", "body": "Your code is {{ code }}"},
    }
    return {
        ("POST", "/api/v1/templates"): Operation(
            "createTemplate",
            "Create a template",
            "templates",
            (Success(201, TemplateOut, "Created.", _TEMPLATE, (_LOCATION,)),),
            _WITH_BODY | {"Conflict"},
            description=(
                "The body (and the subject, for email) are Jinja2, rendered in a sandbox when a notification "
                "names the template; a variable the notification does not give is a 400 then. Syntax errors "
                "are a 400 here. A name already taken by another template of the tenant is a 409."
            ),
            body=Body(TemplateIn, template_body),
        ),
        ("GET", "/api/v1/templates"): Operation(
            "listTemplates",
            "List templates",
            "templates",
            (Success(200, TemplatePageOut, "One page.", {"data": [_TEMPLATE], "next_cursor": None}),),
            _API | {"BadRequest"},
            query=TemplateListParams,
        ),
        ("GET", "/api/v1/templates/{id}"): Operation(
            "getTemplate",
            "Get a template",
            "templates",
            (Success(200, TemplateOut, "The template.", _TEMPLATE),),
            _WITH_ID,
            path_id="template id",
        ),
        ("PUT", "/api/v1/templates/{id}"): Operation(
            "replaceTemplate",
            "Replace a template",
            "templates",
            (
                Success(
                    200, TemplateOut, "Replaced.", {**_TEMPLATE, "updated_at": "2025-01-16T08:00:00.000000Z"}
                ),
            ),
            _WITH_ID | {"Conflict", "PayloadTooLarge"},
            description=(
                "Replaces every field: a subject left out is removed. Notifications accepted before keep "
                "what the template rendered to then."
            ),
            body=Body(TemplateIn, template_body),
            path_id="template id",
        ),
        ("DELETE", "/api/v1/templates/{id}"): Operation(
            "deleteTemplate",
            "Delete a template",
            "templates",
            (Success(204, None, "Deleted.", None),),
            _WITH_ID,
            description="Notifications already accepted from it are not affected.",
            path_id="template id",
        ),
    }


# --- shared components --------------------------------------------------------------------------------------

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Correlation-ID": {
        "description": "The request's correlation id (the caller's when it was acceptable), as logged.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:/=+-]{1,128}$"},
    },
    _LOCATION: {
        "description": "Where the created object can be read.",
        "required": True,
        "schema": {"type": "string"},
    },
    _REPLAYED: {
        "description": "Present on an idempotent replay.",
        "required": True,
        "schema": {"type": "string", "const": "true"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme expected.",
        "required": True,
        "schema": {"type": "string", "const": "Bearer"},
    },
}

_PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Makes the request safe to retry: the same key with the same payload returns the original answer "
            "(200, `Idempotent-Replayed: true`); with a different payload it is a 409. Unique per API key "
            "for as long as the notification exists."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "example": "order-1234-otp",
    },
    "CorrelationId": {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": False,
        "description": (
            "Carried into the logs and the delivery events. A value that does not match "
            "`^[A-Za-z0-9._:/=+-]{1,128}$` is not an error: it is replaced by a fresh id."
        ),
        # Any string is accepted (a bad one is replaced), so the schema does not claim the pattern.
        "schema": {"type": "string"},
        "example": "checkout-7f3a9c",
    },
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


# --- building the document ----------------------------------------------------------------------------------


def _without_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``X | None`` minus its null branch: an absent query parameter is how a client says None."""
    out = {k: v for k, v in schema.items() if k not in ("title",)}
    branches = out.get("anyOf")
    if isinstance(branches, list):
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(branches):
            del out["anyOf"]
            out = {**rest[0], **out}
    if out.get("default", ...) is None:
        del out["default"]
    return out


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters a ``*Params`` model validates, one per field, with that field's schema."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    required = set(schema.get("required", ()))
    params: list[dict[str, Any]] = []
    for name, prop in schema["properties"].items():
        param_schema = _without_null(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in param_schema:
            param["description"] = param_schema.pop("description")
        param["schema"] = param_schema
        params.append(param)
    return params


def _merge_schemas(into: dict[str, Any], defs: Mapping[str, Any]) -> None:
    for name, schema in defs.items():
        if name in into and into[name] != schema:
            # Two models of the same name would silently shadow each other in components.
            raise ValueError(f"two different schemas are both named {name!r}")
        into[name] = schema


def _component_schemas(
    ops: Collection[Operation],
) -> tuple[dict[str, Any], dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]]:
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in ops:
        if op.body is not None:
            inputs.append((op.body.model, "validation"))
        inputs += [(s.model, "serialization") for s in op.success if s.model is not None]
    inputs.append((ErrorOut, "serialization"))
    unique = list(dict.fromkeys(inputs))
    refs, top = models_json_schema(unique, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    for op in ops:
        if op.query is not None:
            # Query models are not components themselves (their fields become parameters), but the enums
            # their fields refer to must be.
            defs = op.query.model_json_schema(mode="validation", ref_template=REF_TEMPLATE).get("$defs", {})
            _merge_schemas(schemas, defs)
    return dict(sorted(schemas.items())), {key: refs[key] for key in unique}


def _json_content(schema: Mapping[str, Any], examples: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "application/json": {
            "schema": dict(schema),
            "examples": {name: {"value": value} for name, value in examples.items()},
        }
    }


_PATH_EXAMPLES = {"notification id": _NOTIFICATION_ID, "batch id": _BATCH_ID, "template id": _TEMPLATE_ID}


def _operation_object(
    op: Operation,
    refs: Mapping[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
) -> dict[str, Any]:
    obj: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    if op.description:
        obj["description"] = op.description
    params: list[dict[str, Any]] = []
    if op.path_id is not None:
        params.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "description": f"The {op.path_id} (a UUID; anything else is a 400).",
                "schema": {"type": "string", "format": "uuid"},
                "example": _PATH_EXAMPLES[op.path_id],
            }
        )
    if op.query is not None:
        params += query_parameters(op.query)
    if op.idempotency_header:
        params.append(_ref("parameters", "IdempotencyKey"))
    params.append(_ref("parameters", "CorrelationId"))
    obj["parameters"] = params
    if op.body is not None:
        obj["requestBody"] = {
            "required": op.body.required,
            "content": _json_content(refs[(op.body.model, "validation")], op.body.examples),
        }
        if op.body.description:
            obj["requestBody"]["description"] = op.body.description
    responses: dict[str, Any] = {}
    for success in op.success:
        headers = {"X-Correlation-ID": _ref("headers", "X-Correlation-ID")}
        headers |= {h: _ref("headers", h) for h in success.headers}
        responses[str(success.status)] = {"description": success.description, "headers": headers}
        if success.model is not None:
            responses[str(success.status)]["content"] = _json_content(
                refs[(success.model, "serialization")], {"example": success.example}
            )
        elif success.content is not None:
            responses[str(success.status)]["content"] = dict(success.content)
    for name in op.errors:
        status = str(ERROR_RESPONSES[name].status)
        if status in responses:
            raise ValueError(f"{op.operation_id}: two answers for status {status}")
        responses[status] = _ref("responses", name)
    obj["responses"] = dict(sorted(responses.items()))
    obj["security"] = [] if op.open else [{"bearerAuth": []}]
    return obj


def _components(schemas: dict[str, Any]) -> dict[str, Any]:
    error_ref = _ref("schemas", "ErrorOut")
    responses = {}
    for name, error in ERROR_RESPONSES.items():
        headers = {"X-Correlation-ID": _ref("headers", "X-Correlation-ID")}
        headers |= {h: _ref("headers", h) for h in error.headers}
        responses[name] = {
            "description": error.description,
            "headers": headers,
            "content": _json_content(error_ref, error.examples),
        }
    return {
        "schemas": schemas,
        "responses": responses,
        "parameters": copy.deepcopy(_PARAMETERS),
        "headers": copy.deepcopy(_HEADERS),
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (see `notify keys --help`) sent as `Authorization: Bearer <key>`.",
            }
        },
    }


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``app``'s API (``app`` is only checked for routes left undocumented)."""
    ops = operations()
    schemas, refs = _component_schemas(ops.values())
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in ops.items():
        paths.setdefault(path, {})[method.lower()] = _operation_object(op, refs)
    missing = undocumented_routes(app)
    if missing:
        # Not fatal at run time (the document is still right about what it lists); the tests fail on it.
        log.warning("routes missing from the OpenAPI document", extra={"routes": missing})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notify",
            "version": notify.__version__,
            "summary": "Self-hosted notification backend: SMS, email and push.",
            "description": (
                "Every `/api/v1` route needs `Authorization: Bearer <key>`. Every error has one shape: "
                '`{"error": "<sentence>", "code": "<machine_code>", "details": [...]}`, each detail naming '
                "a failing `field` with its `message` and `code`. Timestamps are RFC 3339 in UTC."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "notifications", "description": "Create, read, list, cancel and replay notifications."},
            {
                "name": "batches",
                "description": "Up to 1000 notifications accepted all together or not at all.",
            },
            {
                "name": "templates",
                "description": "Reusable contents, rendered when a notification names one.",
            },
            {"name": "operations", "description": "Dead letters, pausing delivery, and delivery metrics."},
            {"name": "health", "description": "Liveness and readiness; no API key needed."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": _components(schemas),
    }


# --- router vs. table ---------------------------------------------------------------------------------------


def _is_docs_route(path: str) -> bool:
    return path in (OPENAPI_PATH, DOCS_PATH, DOCS_INIT_PATH) or path.startswith(DOCS_STATIC_PREFIX)


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(method, canonical path) of every route of ``app`` except HEAD (aiohttp adds it to each GET) and the
    documentation's own routes."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None or _is_docs_route(route.resource.canonical):
            continue
        out.add((route.method, route.resource.canonical))
    return out


def undocumented_routes(app: web.Application) -> list[str]:
    documented = set(operations())
    return sorted(f"{m} {p}" for m, p in routed(app) - documented)


def unknown_documented_routes(app: web.Application) -> list[str]:
    present = routed(app)
    return sorted(f"{m} {p}" for m, p in operations() if (m, p) not in present)


# --- serving ------------------------------------------------------------------------------------------------

_DOCS_HTML = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>notify API</title>
<link rel="stylesheet" type="text/css" href="{DOCS_STATIC_PREFIX}/swagger-ui.css">
<link rel="stylesheet" type="text/css" href="{DOCS_STATIC_PREFIX}/index.css">
<link rel="icon" type="image/png" href="{DOCS_STATIC_PREFIX}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_STATIC_PREFIX}/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="{DOCS_INIT_PATH}" charset="UTF-8"></script>
</body>
</html>
"""

# validatorUrl: null, because Swagger UI's default posts the document to an online validator.
_DOCS_INIT_JS = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}};
"""

# Only this origin: a stray CDN reference would not load, and the tests would see the page break.
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
)


def swagger_ui_dir() -> Path:
    """The Swagger UI 5.x assets shipped in the ``swagger-ui-bundle-v2`` package."""
    vendor = Path(str(importlib.resources.files("swagger_ui_bundle"))) / "vendor"
    found = sorted(vendor.glob("swagger-ui-5.*"))
    if not found or not (found[-1] / "swagger-ui-bundle.js").is_file():
        # swagger-ui-bundle (without -v2) installs the same module with Swagger UI 4, which cannot render 3.1.
        raise RuntimeError(f"Swagger UI 5 assets not found under {vendor}: install swagger-ui-bundle-v2")
    return found[-1]


def _cached_json(build: Callable[[], dict[str, Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    cache: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        if not cache:
            # Built on the first request rather than at start-up: by then every route is registered.
            cache.append(json.dumps(build(), ensure_ascii=False).encode())
        return web.Response(body=cache[0], content_type="application/json", charset="utf-8")

    return handler


def add_docs_routes(app: web.Application) -> None:
    """GET /openapi.json and GET /docs (Swagger UI, from packaged assets). Both stay open: no API key."""
    assets = swagger_ui_dir()

    async def docs(request: web.Request) -> web.Response:
        return web.Response(
            text=_DOCS_HTML, content_type="text/html", headers={"Content-Security-Policy": _DOCS_CSP}
        )

    async def docs_init(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT_JS, content_type="application/javascript")

    app.router.add_get(OPENAPI_PATH, _cached_json(lambda: build_openapi(app)))
    app.router.add_get(DOCS_PATH, docs)
    app.router.add_get(DOCS_INIT_PATH, docs_init)
    app.router.add_static(DOCS_STATIC_PREFIX, assets, follow_symlinks=False)


__all__ = [
    "ERROR_RESPONSES",
    "AttemptListOut",
    "AttemptOut",
    "BatchCountsOut",
    "BatchCreatedOut",
    "BatchOut",
    "BatchSummaryOut",
    "ChannelMetricsOut",
    "ChannelsMetricsOut",
    "DeadLetterReplayOut",
    "DeliveryStateOut",
    "ErrorOut",
    "FieldErrorOut",
    "HealthOut",
    "LiveTokenOut",
    "MetricsOut",
    "NotificationOut",
    "Operation",
    "PageOut",
    "ReadyOut",
    "TemplateOut",
    "TemplatePageOut",
    "add_docs_routes",
    "build_openapi",
    "operations",
    "query_parameters",
    "routed",
    "swagger_ui_dir",
    "undocumented_routes",
    "unknown_documented_routes",
]
