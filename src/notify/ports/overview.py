"""What an operator's overview reads: figures across notifications, and what the workers report about
themselves (consumer lag, breakers, rate limits), which PostgreSQL would not otherwise know."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from notify.domain.model import Batch, Channel, Status


@dataclass(frozen=True, slots=True)
class MinuteOutcomes:
    """Outcomes of one channel in one UTC minute (start of the minute)."""

    minute: datetime
    channel: Channel
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class BatchProgress:
    batch: Batch
    counts: dict[Status, int]


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """One provider's attempts over a recent window; ``failures`` are transient and permanent ones."""

    provider: str
    attempts: int
    failures: int

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one worker process knows about itself, as of ``reported_at``."""

    worker_id: str
    reported_at: datetime
    lag: dict[str, int] = field(default_factory=dict)  # topic -> records not yet committed (its partitions)
    breakers: dict[str, str] = field(default_factory=dict)  # breaker name -> closed | half_open | open
    rate_limits: dict[str, float | None] = field(default_factory=dict)  # channel -> messages/s, None: none


class WorkerReports(Protocol):
    async def report(self, report: WorkerReport) -> None:
        """Store this worker's report, replacing its previous one."""
        ...


class Overview(Protocol):
    """Reads across notifications. ``tenant_id`` None: every tenant's (an operator's view)."""

    async def status_counts(self, tenant_id: str | None, since: datetime) -> dict[Status, int]:
        """How many notifications created at or after ``since`` are in each status now."""
        ...

    async def outcomes_per_minute(self, tenant_id: str | None, since: datetime) -> list[MinuteOutcomes]:
        """Delivered and failed per channel and minute, from ``since`` on, oldest first."""
        ...

    async def recent_batches(self, tenant_id: str | None, limit: int) -> list[BatchProgress]:
        """The newest batches with their notifications counted per status."""
        ...

    async def provider_health(self, tenant_id: str | None, since: datetime) -> list[ProviderHealth]:
        """Attempts and failures per provider since ``since``."""
        ...

    async def tenants(self) -> list[str]:
        """Every tenant that has an API key, in order."""
        ...

    async def unpublished_outbox(self) -> int:
        """Outbox records not yet published to Kafka (every tenant's)."""
        ...

    async def worker_reports(self, since: datetime) -> list[WorkerReport]:
        """Reports made at or after ``since`` (older ones are workers that went away)."""
        ...
