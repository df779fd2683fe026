"""Persistence of notifications and their outbox, as small interfaces by who uses them: accepting and
querying (``Notifications``), delivering (``DeliveryLedger``), operators (``OperatorActions``), the recovery
sweeps (``Sweeps``), the relays (``Outbox``). ``NotificationStore`` is all four notification interfaces at
once, as one adapter (PostgreSQL, or the fake in the tests) provides them. Every method is one atomic
transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from notify.domain.delivery import AttemptRecord, Claim, DeliveryResult
from notify.domain.model import Batch, Channel, Notification, Status
from notify.domain.outbox import OutboxRecord
from notify.domain.pauses import Pauses
from notify.domain.queries import DeadLetterQuery, ListQuery, Page
from notify.domain.timeline import StatusChange
from notify.ports.queue import Position, Waiting


class Notifications(Protocol):
    """What accepting, reading and cancelling notifications needs (``app.notifications``)."""

    async def create(self, notifications: Sequence[Notification], batch: Batch | None = None) -> None:
        """Insert the batch (if any), the notifications and, for each ``pending`` one, its outbox record: all
        or nothing. Raises DuplicateIdempotencyKey if a notification's (or the batch's) key is taken."""
        ...

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Notification | None: ...

    async def used_idempotency_keys(self, tenant_id: str, keys: Sequence[str]) -> set[str]: ...

    async def get_batch(self, tenant_id: str, batch_id: UUID) -> Batch | None: ...

    async def find_batch_by_idempotency_key(self, tenant_id: str, key: str) -> Batch | None: ...

    async def batch_notifications(self, batch: Batch) -> list[Notification]:
        """Every notification of the batch, in the order they were submitted."""
        ...

    async def batch_counts(self, batch_id: UUID) -> dict[Status, int]: ...

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None: ...

    async def search(self, query: ListQuery) -> Page: ...

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        """Cancel if the status machine allows it; raises NotFound or IllegalTransition otherwise."""
        ...


class DeliveryLedger(Protocol):
    """What a delivery round needs (``app.delivery``): claim, keep the lease, store the outcome."""

    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> Notification | None:
        """Move a ``pending`` notification to ``processing`` under ``claim``; None if it is not claimable
        (cancelled, delivered, already claimed, unknown)."""
        ...

    async def record_result(
        self, notification_id: UUID, claim: Claim, now: datetime, result: DeliveryResult
    ) -> bool:
        """Store a round's outcome and its ledger rows (and a dead-letter record when it failed), all in one
        transaction. False if the claim was lost (our lease ran out and another worker took over)."""
        ...

    async def extend_lease(self, notification_id: UUID, claim: Claim, now: datetime) -> bool:
        """Move the lease of a ``processing`` notification held by ``claim.worker_id`` to
        ``claim.lease_until``. False if that claim no longer holds it."""
        ...

    async def park(self, notification_id: UUID, now: datetime) -> None:
        """Leave a ``pending`` notification of a paused channel waiting; it is re-enqueued after resume."""
        ...


class OperatorActions(Protocol):
    """What operators and tenants do beyond sending (``app.operations``): the attempts ledger, dead letters
    and replay, pausing delivery."""

    async def timeline(self, tenant_id: str, notification_id: UUID) -> list[StatusChange] | None:
        """Its creation and every status change kept (within the history's retention), oldest first; None if
        there is no such notification for this tenant."""
        ...

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord] | None:
        """The ledger, oldest first; None if there is no such notification for this tenant."""
        ...

    async def dead_letters(self, query: DeadLetterQuery) -> Page: ...

    async def replay(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        """``failed``/``expired`` -> ``pending`` with fresh retries; raises NotFound or IllegalTransition."""
        ...

    async def count_dead_letters(self, query: DeadLetterQuery) -> int:
        """How many dead letters match ``query`` (paging ignored)."""
        ...

    async def replay_dead_letters(self, query: DeadLetterQuery, now: datetime, limit: int) -> int:
        """Replay at most ``limit`` dead letters matching ``query`` (paging ignored), oldest first, each in
        the same way as :meth:`replay`; how many were replayed."""
        ...

    async def set_paused(
        self, tenant_id: str | None, channel: Channel | None, paused: bool, now: datetime
    ) -> None:
        """Pause or resume one channel, or all (None), for one tenant or for everyone (None: the global
        switch). Resuming all channels of a scope clears every pause of that scope."""
        ...

    async def pauses(self) -> Pauses:
        """Every paused scope, global and per tenant."""
        ...


class Sweeps(Protocol):
    """What the recovery sweeps do (``app.recovery``): release what is due, recover what was lost."""

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        """``scheduled`` whose time has come -> ``pending`` plus outbox record. Safe under many workers."""
        ...

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        """``processing`` whose lease ran out (its worker died) -> ``pending`` plus outbox record."""
        ...

    async def release_due_retries(
        self, now: datetime, limit: int, stale_before: datetime, waiting: Sequence[Waiting] | None = None
    ) -> int:
        """``retrying`` whose ``next_attempt_at`` has come: an outbox record (status stays ``retrying``). One
        released before ``stale_before`` and still not claimed is released again if its record was lost (as
        for :meth:`requeue_stale_pending`; with ``waiting`` None, not at all)."""
        ...

    async def requeue_parked(self, now: datetime, limit: int) -> int:
        """Parked notifications of channels no longer paused: an outbox record each."""
        ...

    async def purge_status_history(self, older_than: datetime, limit: int) -> int:
        """Delete at most ``limit`` status changes made before ``older_than``; how many went."""
        ...

    async def requeue_stale_pending(
        self, older_than: datetime, now: datetime, limit: int, waiting: Sequence[Waiting]
    ) -> int:
        """Re-enqueue ``pending`` notifications not claimed since ``older_than`` whose record was lost, as
        ``waiting`` shows: read past by the group, or beyond its partition's end (the broker lost it). Not
        one whose record still waits in its partition (behind consumer lag), is on a partition ``waiting``
        says nothing about, or is not published yet."""
        ...


class NotificationStore(Notifications, DeliveryLedger, OperatorActions, Sweeps, Protocol):
    """The whole store, as one adapter provides it."""


# Publishes records and returns where each landed (in the same order), or None when that is not known.
Publish = Callable[[Sequence[OutboxRecord]], Awaitable[Sequence[Position] | None]]


class Outbox(Protocol):
    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        """Lock up to ``limit`` unpublished records (skipping ones another relay holds), ``publish`` them,
        mark them published, commit. If ``publish`` raises, nothing is marked. Returns how many were sent."""
        ...

    async def purge_published(self, older_than: datetime) -> int: ...

    async def backlog(self) -> int:
        """How many records wait to be published."""
        ...
