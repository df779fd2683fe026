"""Persistence of notifications and their outbox. Every method is one atomic PostgreSQL transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from notify.domain.model import Channel, Notification, Priority, Status


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A request to put one notification on its priority topic, written in the same transaction as the
    change that made it due (accept, scheduled release, lease recovery)."""

    id: int
    notification_id: UUID
    priority: Priority
    channel: Channel
    correlation_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ListQuery:
    tenant_id: str
    status: Status | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    batch_id: UUID | None = None
    recipient: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    after_id: UUID | None = None  # keyset cursor: return ids strictly older than this one
    page_size: int = 20


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Notification]
    next_after_id: UUID | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's right to attempt delivery until ``lease_until``."""

    worker_id: str
    lease_until: datetime


class NotificationStore(Protocol):
    async def create(self, notifications: Sequence[Notification]) -> None:
        """Insert the notifications and, for each ``pending`` one, its outbox record: all or nothing."""
        ...

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None: ...

    async def list(self, query: ListQuery) -> Page: ...

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        """Cancel if the status machine allows it; raises NotFound or IllegalTransition otherwise."""
        ...

    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> Notification | None:
        """Move a ``pending`` notification to ``processing`` under ``claim``; None if it is not claimable
        (cancelled, delivered, already claimed, unknown)."""
        ...

    async def record_delivered(
        self, notification_id: UUID, claim: Claim, now: datetime, provider: str, provider_message_id: str
    ) -> bool:
        """Store success; False if the claim was lost (the lease expired and another worker took over)."""
        ...

    async def record_failed(
        self, notification_id: UUID, claim: Claim, now: datetime, provider: str | None, error: str
    ) -> bool: ...

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        """``scheduled`` whose time has come -> ``pending`` plus outbox record. Safe under many workers."""
        ...

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        """``processing`` whose lease ran out (its worker died) -> ``pending`` plus outbox record."""
        ...

    async def requeue_stale_pending(self, older_than: datetime, now: datetime, limit: int) -> int:
        """Re-enqueue ``pending`` notifications not claimed since ``older_than`` (their record was lost)."""
        ...


Publish = Callable[[Sequence[OutboxRecord]], Awaitable[None]]


class Outbox(Protocol):
    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        """Lock up to ``limit`` unpublished records (skipping ones another relay holds), ``publish`` them,
        mark them published, commit. If ``publish`` raises, nothing is marked. Returns how many were sent."""
        ...

    async def purge_published(self, older_than: datetime) -> int: ...

    async def backlog(self) -> int:
        """How many records wait to be published."""
        ...
