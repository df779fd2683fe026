"""Status webhooks: a tenant's endpoints, and the deliveries of status events to them.

Each status event is written, for every enabled endpoint of the tenant that wants it, as a delivery row in
the transaction of the status change; workers deliver those rows, signed as the Standard Webhooks
specification says (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). A delivery's
``webhook-id`` is the same on every retry and replay, so a receiver can drop repeats; each body carries the
event's ``event_id``, increasing with every status change, so a receiver can order them (per notification,
they are also sent in order).
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from notify.domain.errors import FieldError
from notify.domain.model import Channel, Status

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes, base64-encoded."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: UUID
    tenant_id: str
    url: str
    statuses: frozenset[Status]  # empty: every status
    channels: frozenset[Channel]  # empty: every channel
    enabled: bool
    secret: str
    created_at: datetime
    updated_at: datetime
    previous_secret: str | None = None  # still signs until previous_secret_until (a rotation's overlap)
    previous_secret_until: datetime | None = None
    failing_since: datetime | None = None  # the first failure since the last success
    disabled_reason: str | None = None  # why notify disabled it (None: enabled, or disabled by the tenant)

    def secrets_at(self, now: datetime) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one during the
        overlap after a rotation (a receiver that still has the old secret keeps verifying)."""
        out = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            out.append(self.previous_secret)
        return out


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its first or next attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # attempts exhausted (a replay queues it again)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: int
    endpoint_id: UUID
    notification_id: UUID
    event_id: int
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    last_latency_ms: float | None = None
    delivered_at: datetime | None = None

    @property
    def message_id(self) -> str:
        """``webhook-id``: the same on every retry and replay of this delivery."""
        return f"msg_{self.endpoint_id.hex[:12]}_{self.id}"

    @property
    def event_type(self) -> str:
        return f"notification.{self.payload.get('status', 'unknown')}"


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """One HTTP call made for a delivery."""

    started_at: datetime
    finished_at: datetime
    http_status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300

    @property
    def latency_ms(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    attempt: int
    call: WebhookCall


def check_webhook_url(url: str, *, allow_private: bool) -> FieldError | None:
    """An endpoint's URL: https to a public host. With ``allow_private`` (development, tests: ``notify dev``
    turns it on) http and loopback or private hosts are allowed too. Literal addresses and well-known
    local names are checked here; a name that resolves to a private address is the deployment's egress
    policy's to stop."""
    if len(url) > MAX_URL_LENGTH:
        return FieldError("url", f"must be at most {MAX_URL_LENGTH} characters", "too_long")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return FieldError("url", "is not a URL", "invalid_url")
    if parts.scheme not in ("https", "http") or not host:
        return FieldError("url", "must be an https:// URL", "invalid_url")
    if parts.username or parts.password:
        return FieldError(
            "url", "must not carry credentials (the signature authenticates notify)", "invalid_url"
        )
    if allow_private:
        return None
    if parts.scheme != "https":
        return FieldError("url", "must use https", "insecure_url")
    if _private_host(host):
        return FieldError("url", "must not point at a loopback, private or link-local address", "private_url")
    return None


def _private_host(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal", ".localdomain")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not address.is_global or address.is_multicast
