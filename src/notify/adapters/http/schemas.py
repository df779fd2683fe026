"""What clients send the HTTP API (pydantic request and query models), and the paging cursor; the answers are
``responses.py``."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from notify.app.notifications import NewNotification
from notify.app.operations import PauseScope
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel, Priority, Status
from notify.settings import AnyProviderSettings

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _rfc3339_string(value: object) -> object:
    # Lax parsing (query strings) would take a number as a Unix timestamp; the contract says RFC 3339.
    message = "must be an RFC 3339 date-time string, e.g. 2026-01-31T12:00:00Z"
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(message)
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(message) from None


def _in_range(value: datetime) -> datetime:
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 1970-01-01 and 9000-01-01")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string), AfterValidator(_in_range)]
Cursor = Annotated[str, Field(min_length=1, max_length=64)]


class NotificationIn(BaseModel):
    """One notification as a client posts it. Unknown fields are rejected; types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel: Channel
    recipient: str
    content: str | None = None
    subject: str | None = None
    priority: Priority = Priority.NORMAL
    scheduled_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    template_id: UUID | None = None
    template_variables: dict[str, Any] | None = None

    def to_new(self, idempotency_header: str | None = None) -> NewNotification:
        if idempotency_header is not None and self.idempotency_key not in (None, idempotency_header):
            raise ValidationFailed.for_fields(
                [FieldError("idempotency_key", "differs from the Idempotency-Key header", "conflict")]
            )
        return NewNotification(
            channel=self.channel,
            recipient=self.recipient,
            content=self.content,
            subject=self.subject,
            priority=self.priority,
            scheduled_at=self.scheduled_at,
            expires_at=self.expires_at,
            metadata=self.metadata,
            idempotency_key=self.idempotency_key if self.idempotency_key is not None else idempotency_header,
            template_id=self.template_id,
            template_variables=self.template_variables,
        )


class BatchIn(BaseModel):
    """POST /notifications/batch: 1 to 1000 notifications, accepted all together or not at all."""

    model_config = ConfigDict(extra="forbid", strict=True)

    notifications: list[NotificationIn]


class ListParams(BaseModel):
    """Query parameters of GET /notifications (strings from the URL, so lax parsing)."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    batch_id: UUID | None = None
    recipient: str | None = Field(default=None, min_length=1, max_length=4096)
    date_from: Timestamp | None = None
    date_to: Timestamp | None = None
    cursor: Cursor | None = None
    page_size: int = Field(default=20, ge=1, le=100)


def encode_cursor(after_id: UUID) -> str:
    return base64.urlsafe_b64encode(after_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed.for_fields(
            [FieldError("cursor", "is not a cursor this API returned", "invalid_cursor")]
        ) from exc


class BatchPageParams(BaseModel):
    """Query parameters of GET /batches/{id}/notifications."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    cursor: Cursor | None = None
    page_size: int = Field(default=20, ge=1, le=100)


class DeadLetterParams(BaseModel):
    """Query parameters of GET /dead-letters."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel | None = None
    provider: str | None = Field(default=None, min_length=1, max_length=200)
    error: str | None = Field(default=None, min_length=1, max_length=500)
    date_from: Timestamp | None = None
    date_to: Timestamp | None = None
    cursor: Cursor | None = None
    page_size: int = Field(default=20, ge=1, le=100)


class DeadLetterReplayIn(BaseModel):
    """Body of POST /dead-letters/replay: a filter, and dry_run to only count."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel: Channel | None = None
    provider: str | None = Field(default=None, min_length=1, max_length=200)
    error: str | None = Field(default=None, min_length=1, max_length=500)
    date_from: Timestamp | None = None
    date_to: Timestamp | None = None
    dry_run: bool = False
    limit: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="At most this many are re-queued by one call, oldest first; `remaining` in the answer "
        "says how many another call would find.",
    )


class ChannelScopeIn(BaseModel):
    """Body of POST /delivery/pause and /resume: one channel (none: all), and whose traffic."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channel: Channel | None = Field(None, description="One channel; none: every channel.")
    scope: PauseScope | None = Field(
        None,
        description="`global`: every tenant (admin keys only); `tenant`: one tenant. Default: what the key "
        "owns, the global switch for an admin key, the key's tenant for a tenant key.",
    )
    tenant_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The tenant to pause or resume (another tenant's needs an admin key).",
    )


class DeliveryParams(BaseModel):
    """Query of GET /delivery: an admin key may look at another tenant."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(None, min_length=1, max_length=200)


class MetricsParams(BaseModel):
    """Query parameters of GET /metrics."""

    model_config = ConfigDict(extra="forbid")

    window_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description=(
            "How far back to count outcomes, in seconds (60 to 604800). Outcomes are counted per minute, so "
            "the window starts at the whole minute at or before now - window_s (returned as `since`)."
        ),
    )


class TenantProvidersIn(BaseModel):
    """Body of PUT /providers: a tenant's own providers for one channel, in failover order, each an entry as
    in ``NOTIFY_PROVIDERS`` (docs/providers.md). They replace the operator's for that tenant and channel."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    channel: Channel
    providers: list[AnyProviderSettings] = Field(min_length=1, max_length=5)
    tenant_id: str | None = Field(
        None, min_length=1, max_length=200, description="Another tenant's (admin keys only)."
    )


class TenantProvidersParams(BaseModel):
    """Query of GET /providers: an admin key may look at another tenant."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(None, min_length=1, max_length=200)


class TenantChannelParams(BaseModel):
    """Query of DELETE /providers: the channel whose own providers to drop (the operator's apply again)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    tenant_id: str | None = Field(None, min_length=1, max_length=200)


class EventsParams(BaseModel):
    """Query parameters of GET /events (the Last-Event-ID header, when sent, wins over ``since``)."""

    model_config = ConfigDict(extra="forbid")

    since: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Replay the stored events after this event id first; left out: live events only.",
    )
    channel: Channel | None = None
    tenants: Literal["all"] | None = Field(
        None, description="`all`: every tenant's events (admin keys only)."
    )


class EraseIn(BaseModel):
    """Body of POST /recipients/erase."""

    model_config = ConfigDict(extra="forbid", strict=True)

    recipient: str = Field(
        min_length=1, max_length=4096, description="A phone number, email address or device token."
    )
