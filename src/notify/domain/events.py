"""Status events: one per status transition of a notification, for live subscribers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StatusEvent:
    notification_id: str
    tenant_id: str
    batch_id: str | None
    channel: str
    status: str
    previous_status: str | None
    attempt: int
    error: str | None
    provider: str | None
    timestamp: str  # RFC 3339 UTC, when the transition was stored
    seq: int  # grows with every event; a repeat of an event already seen has the same seq
    next_attempt_at: str | None = None  # RFC 3339 UTC; set on 'retrying' events: when the next attempt is due
    priority: str | None = None  # None only for events stored before migration 0015
    event_id: int | None = None  # the status change's id (status_history): increasing; None before 0016

    def public(self) -> dict[str, Any]:
        """What a subscriber receives (see the README, "Live status"); tenant and sequence stay inside."""
        return {
            "event_id": self.event_id,
            "notification_id": self.notification_id,
            "batch_id": self.batch_id,
            "channel": self.channel,
            "priority": self.priority,
            "status": self.status,
            "previous_status": self.previous_status,
            "attempt": self.attempt,
            "error": self.error,
            "provider": self.provider,
            "next_attempt_at": self.next_attempt_at,
            "timestamp": self.timestamp,
        }

    def for_operator(self) -> dict[str, Any]:
        """What an admin watching every tenant receives: the public fields and the tenant."""
        return {**self.public(), "tenant_id": self.tenant_id}
