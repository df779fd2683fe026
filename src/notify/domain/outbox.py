"""Outbox records: messages to publish, written in the transaction of the change that calls for them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from notify.domain.model import Channel, Priority


class OutboxKind(StrEnum):
    DISPATCH = "dispatch"  # put the notification on its priority topic for delivery
    DEAD_LETTER = "dead_letter"  # announce on the dead-letter topic that it failed for good
    STATUS = "status"  # one status transition, for the status topic (live WebSocket updates)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A message to publish, written in the same transaction as the change that called for it (accept,
    scheduled release, retry due, lease recovery, final failure)."""

    id: int
    notification_id: UUID
    priority: Priority
    channel: Channel
    correlation_id: str | None
    created_at: datetime
    kind: OutboxKind = OutboxKind.DISPATCH
    payload: dict[str, Any] | None = None  # the event of a STATUS record
    trace_context: str | None = None  # the notification's W3C traceparent: publishes continue its trace
    tenant_id: str | None = None  # the notification's tenant: a worker honours its pause before claiming
