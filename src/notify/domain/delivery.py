"""A delivery round's vocabulary: the claim a worker holds, each provider call, what the round ended in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from notify.domain.model import Status


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's right to attempt delivery until ``lease_until``."""

    worker_id: str
    lease_until: datetime


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One provider call, for the attempts ledger."""

    attempt: int
    provider: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    http_status: int | None = None
    error: str | None = None
    # A half-open breaker's trial call that failed: recorded, but it does not use up a retry.
    breaker_trial: bool = False

    @property
    def latency_ms(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a delivery round ended in. ``status`` is DELIVERED, RETRYING or FAILED; ``calls`` are the provider
    calls made. A round counts as an attempt (uses up a retry) only if it made a call that was not a breaker
    trial: none when every breaker was open, or when the only calls were failed half-open trials."""

    status: Status
    calls: list[AttemptRecord]
    provider: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def counts_as_attempt(self) -> bool:
        return any(not c.breaker_trial for c in self.calls)
