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

    def public(self) -> dict[str, Any]:
        """What a subscriber receives (see the README, "Live status"); tenant and sequence stay inside."""
        return {
            "notification_id": self.notification_id,
            "batch_id": self.batch_id,
            "channel": self.channel,
            "status": self.status,
            "previous_status": self.previous_status,
            "attempt": self.attempt,
            "error": self.error,
            "provider": self.provider,
            "next_attempt_at": self.next_attempt_at,
            "timestamp": self.timestamp,
        }
