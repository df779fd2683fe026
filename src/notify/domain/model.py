"""The Notification entity, its value types and its status machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from notify.domain.errors import IllegalTransition


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    PUSH = "push"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}
PRIORITIES_BY_RANK: tuple[Priority, ...] = (Priority.HIGH, Priority.NORMAL, Priority.LOW)


class Status(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    PROCESSING = "processing"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.DELIVERED, Status.FAILED, Status.CANCELLED, Status.EXPIRED})

# Every allowed status change. Anything not listed is an IllegalTransition, never a silent overwrite.
# processing -> pending is lease recovery (the worker holding the claim died); failed/expired -> pending is
# a replay.
ALLOWED_TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset({Status.PENDING, Status.CANCELLED, Status.EXPIRED}),
    Status.PENDING: frozenset({Status.PROCESSING, Status.CANCELLED, Status.EXPIRED}),
    Status.PROCESSING: frozenset(
        {Status.DELIVERED, Status.RETRYING, Status.FAILED, Status.EXPIRED, Status.PENDING}
    ),
    Status.RETRYING: frozenset({Status.PROCESSING, Status.CANCELLED, Status.EXPIRED}),
    Status.DELIVERED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset(),
    Status.EXPIRED: frozenset({Status.PENDING}),
}


# What a replay may re-queue: a notification that ended without being delivered. Not one in flight (it
# would be sent twice), not one waiting anyway, not a cancelled one.
REPLAYABLE = frozenset({Status.FAILED, Status.EXPIRED})


def can_transition(current: Status, target: Status) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: Status, target: Status) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(current.value, target.value)


def sources_of(target: Status) -> frozenset[Status]:
    """The statuses from which ``target`` may be reached: what a conditional UPDATE must match."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


@dataclass(frozen=True, slots=True)
class Notification:
    id: UUID
    tenant_id: str
    channel: Channel
    recipient: str
    content: str
    priority: Priority
    status: Status
    created_at: datetime
    updated_at: datetime
    subject: str | None = None
    batch_id: UUID | None = None
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    idempotency_key: str | None = None
    template_id: UUID | None = None
    template_variables: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    max_retries: int = 0
    provider: str | None = None
    provider_message_id: str | None = None
    error_message: str | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    correlation_id: str | None = None
    next_attempt_at: datetime | None = None
    attempt_base: int = 0  # attempts made before the last replay (a replay brings fresh retries)
    request_hash: str | None = None  # fingerprint of the accepting request, for idempotent replays
    trace_context: str | None = None  # W3C traceparent of its trace: every later step continues it


@dataclass(frozen=True, slots=True)
class Batch:
    id: UUID
    tenant_id: str
    total: int
    created_at: datetime
    idempotency_key: str | None = None
    request_hash: str | None = None
    correlation_id: str | None = None
