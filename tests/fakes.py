"""Hand-written fakes of the ports, for domain and app tests. They record what happened."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID

from notify.domain.delivery import AttemptRecord, Claim, DeliveryResult
from notify.domain.errors import (
    CircuitOpen,
    DuplicateIdempotencyKey,
    IllegalTransition,
    NotFound,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    TrialCallFailed,
)
from notify.domain.events import StatusEvent
from notify.domain.keys import ApiKey
from notify.domain.model import (
    REPLAYABLE,
    Batch,
    Channel,
    Notification,
    Status,
    can_transition,
    check_transition,
    sources_of,
)
from notify.domain.outbox import OutboxKind, OutboxRecord
from notify.domain.pauses import EVERY, Pauses
from notify.domain.queries import DeadLetterQuery, ListQuery, Page
from notify.domain.receipts import Receipt
from notify.domain.text import identifier, storable
from notify.domain.timeline import StatusChange, timeline
from notify.domain.webhooks import DeliveryStatus, WebhookCall, WebhookDelivery, WebhookEndpoint
from notify.ports.overview import BatchProgress, MinuteOutcomes, ProviderHealth, WorkerReport
from notify.ports.provider import ProviderMessage, ProviderReceipt
from notify.ports.queue import Position, Waiting
from notify.ports.resilience import Grant
from notify.ports.stats import ChannelFigures
from notify.ports.store import Publish
from notify.ports.tenant_providers import StoredProviders


def transition(n: Notification, target: Status, now: datetime, **changes: Any) -> Notification:
    """A copy of ``n`` in ``target`` status, as the store moves it; raises IllegalTransition if the status
    machine forbids it (PostgreSQL's conditional updates do the same)."""
    check_transition(n.status, target)
    return dataclasses.replace(n, status=target, updated_at=now, **changes)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def _rfc3339(t: datetime) -> str:
    """As the status-event trigger formats timestamps: UTC, microseconds, Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeStore:
    """In-memory NotificationStore + Outbox that behaves as the PostgreSQL one does, down to the status events
    its trigger writes: tests/integration/test_store_contract.py runs the same scenarios against both."""

    def __init__(self) -> None:
        self.rows: dict[UUID, Notification] = {}
        self.leases: dict[UUID, Claim] = {}
        self.enqueued_at: dict[UUID, datetime | None] = {}  # None: not waiting for a dispatch record
        self.outbox: list[OutboxRecord] = []  # every record, status events included, in id order
        self.published_at: dict[int, datetime] = {}
        self.positions: dict[int, Position] = {}  # where each published record landed, when known
        self.ledger: dict[UUID, list[AttemptRecord]] = {}
        self.paused: set[tuple[str, str]] = set()  # (tenant or "*", channel or "*")
        self.batches: dict[UUID, Batch] = {}
        self.receipts: dict[UUID, list[Receipt]] = {}
        self.history: list[tuple[UUID, StatusChange]] = []  # the status_history table
        self._ids = count(1)

    # --- what the tests read ---

    @property
    def dispatches(self) -> list[OutboxRecord]:
        """Dispatch and dead-letter records (no status events)."""
        return [r for r in self.outbox if r.kind is not OutboxKind.STATUS]

    @property
    def status_events(self) -> list[dict[str, Any]]:
        return [r.payload or {} for r in self.outbox if r.kind is OutboxKind.STATUS]

    @property
    def parked(self) -> set[UUID]:
        return {
            i for i, n in self.rows.items() if n.status is Status.PENDING and self.enqueued_at.get(i) is None
        }

    # --- helpers ---

    def _record(
        self, n: Notification, now: datetime, kind: OutboxKind, payload: dict[str, Any] | None = None
    ) -> None:
        self.outbox.append(
            OutboxRecord(
                next(self._ids),
                n.id,
                n.priority,
                n.channel,
                n.correlation_id,
                now,
                kind,
                payload,
                n.trace_context,
                n.tenant_id,
            )
        )

    def _enqueue(self, n: Notification, now: datetime) -> None:
        self.enqueued_at[n.id] = now
        self._record(n, now, OutboxKind.DISPATCH)

    def _store(self, new: Notification) -> Notification:
        """Save ``new``; a status change writes its event, as the trigger does."""
        old = self.rows.get(new.id)
        self.rows[new.id] = new
        if old is not None and old.status is not new.status:
            self.history.append(
                (
                    new.id,
                    StatusChange(
                        new.status,
                        old.status,
                        new.attempts + 1 if new.status is Status.PROCESSING else new.attempts,
                        new.updated_at,
                        new.error_message if new.status in (Status.RETRYING, Status.FAILED) else None,
                        new.provider,
                    ),
                )
            )
            self._record(
                new,
                new.updated_at,
                OutboxKind.STATUS,
                {
                    "notification_id": str(new.id),
                    "tenant_id": new.tenant_id,
                    "batch_id": str(new.batch_id) if new.batch_id else None,
                    "channel": new.channel.value,
                    "status": new.status.value,
                    "previous_status": old.status.value,
                    "attempt": new.attempts + 1 if new.status is Status.PROCESSING else new.attempts,
                    "error": new.error_message if new.status in (Status.RETRYING, Status.FAILED) else None,
                    "provider": new.provider,
                    "next_attempt_at": _rfc3339(new.next_attempt_at)
                    if new.status is Status.RETRYING and new.next_attempt_at
                    else None,
                    "timestamp": _rfc3339(new.updated_at),
                },
            )
        return new

    def _mine(self, tenant_id: str, notification_id: UUID) -> Notification | None:
        n = self.rows.get(notification_id)
        return n if n and n.tenant_id == tenant_id else None

    # --- NotificationStore: accepting and querying ---

    async def create(self, notifications: Sequence[Notification], batch: Batch | None = None) -> None:
        if (
            batch is not None
            and batch.idempotency_key is not None
            and any(
                b.tenant_id == batch.tenant_id and b.idempotency_key == batch.idempotency_key
                for b in self.batches.values()
            )
        ):
            raise DuplicateIdempotencyKey("duplicate batch key", batch=True)
        keys = {(n.tenant_id, n.idempotency_key) for n in self.rows.values() if n.idempotency_key}
        for n in notifications:
            if n.idempotency_key and (n.tenant_id, n.idempotency_key) in keys:
                raise DuplicateIdempotencyKey("duplicate idempotency key")
            if n.idempotency_key:
                keys.add((n.tenant_id, n.idempotency_key))
        if batch is not None:
            self.batches[batch.id] = batch
        for n in notifications:
            self.rows[n.id] = n
            self.enqueued_at[n.id] = None
            if n.status is Status.PENDING:
                self._enqueue(n, n.created_at)

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Notification | None:
        return next(
            (n for n in self.rows.values() if n.tenant_id == tenant_id and n.idempotency_key == key), None
        )

    async def used_idempotency_keys(self, tenant_id: str, keys: Sequence[str]) -> set[str]:
        return {
            n.idempotency_key
            for n in self.rows.values()
            if n.tenant_id == tenant_id and n.idempotency_key is not None and n.idempotency_key in keys
        }

    async def get_batch(self, tenant_id: str, batch_id: UUID) -> Batch | None:
        b = self.batches.get(batch_id)
        return b if b and b.tenant_id == tenant_id else None

    async def find_batch_by_idempotency_key(self, tenant_id: str, key: str) -> Batch | None:
        return next(
            (b for b in self.batches.values() if b.tenant_id == tenant_id and b.idempotency_key == key), None
        )

    async def batch_notifications(self, batch: Batch) -> list[Notification]:
        return sorted((n for n in self.rows.values() if n.batch_id == batch.id), key=lambda n: n.id)

    async def batch_counts(self, batch_id: UUID) -> dict[Status, int]:
        counts: dict[Status, int] = {}
        for n in self.rows.values():
            if n.batch_id == batch_id:
                counts[n.status] = counts.get(n.status, 0) + 1
        return counts

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None:
        return self._mine(tenant_id, notification_id)

    async def search(self, query: ListQuery) -> Page:
        def matches(n: Notification) -> bool:
            return (
                (query.tenant_id is None or n.tenant_id == query.tenant_id)
                and (query.status is None or n.status is query.status)
                and (query.channel is None or n.channel is query.channel)
                and (query.priority is None or n.priority is query.priority)
                and (query.batch_id is None or n.batch_id == query.batch_id)
                and (query.recipient is None or n.recipient == query.recipient)
                and (query.date_from is None or n.created_at >= query.date_from)
                and (query.date_to is None or n.created_at <= query.date_to)
                and (query.after_id is None or n.id < query.after_id)
            )

        return self._page(
            sorted(filter(matches, self.rows.values()), key=lambda n: n.id, reverse=True), query.page_size
        )

    @staticmethod
    def _page(items: list[Notification], size: int) -> Page:
        page = items[:size]
        return Page(page, page[-1].id if len(items) > size else None)

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        n = self._mine(tenant_id, notification_id)
        if n is None:
            raise NotFound("not found")
        if not can_transition(n.status, Status.CANCELLED):
            raise IllegalTransition(n.status.value, Status.CANCELLED.value)
        return self._store(transition(n, Status.CANCELLED, now))

    # --- the delivery ledger ---

    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> Notification | None:
        n = self.rows.get(notification_id)
        if n is None or n.status not in sources_of(Status.PROCESSING):
            return None
        if n.status is Status.RETRYING and (n.next_attempt_at is None or n.next_attempt_at > now):
            return None
        if n.expires_at is not None and n.expires_at <= now:
            self.leases.pop(n.id, None)
            return self._store(transition(n, Status.EXPIRED, now, next_attempt_at=None))
        self.leases[n.id] = claim
        return self._store(transition(n, Status.PROCESSING, now, next_attempt_at=None))

    async def record_result(
        self, notification_id: UUID, claim: Claim, now: datetime, result: DeliveryResult
    ) -> bool:
        n = self.rows.get(notification_id)
        held = self.leases.get(notification_id)
        if (
            n is None
            or n.status is not Status.PROCESSING
            or held is None
            or held.worker_id != claim.worker_id
        ):
            return False
        self._store(
            transition(
                n,
                result.status,
                now,
                attempts=n.attempts + (1 if result.counts_as_attempt else 0),
                provider=result.provider or n.provider,
                provider_message_id=result.provider_message_id and identifier(result.provider_message_id),
                error_message=(result.error or None) and storable(result.error, 2000),
                next_attempt_at=result.next_attempt_at,
                sent_at=now if result.status is Status.DELIVERED else None,
                failed_at=now if result.status is Status.FAILED else None,
            )
        )
        del self.leases[notification_id]
        if result.status is Status.RETRYING:
            self.enqueued_at[notification_id] = None  # its dispatch record is written when it is released
        self.ledger.setdefault(notification_id, []).extend(result.calls)
        if result.status is Status.FAILED:
            self._record(self.rows[notification_id], now, OutboxKind.DEAD_LETTER)
        return True

    async def extend_lease(self, notification_id: UUID, claim: Claim, now: datetime) -> bool:
        n, held = self.rows.get(notification_id), self.leases.get(notification_id)
        if (
            n is None
            or n.status is not Status.PROCESSING
            or held is None
            or held.worker_id != claim.worker_id
        ):
            return False
        self.leases[notification_id] = claim
        return True

    async def park(self, notification_id: UUID, now: datetime) -> None:
        n = self.rows.get(notification_id)
        if n is not None and n.status is Status.PENDING:
            self.enqueued_at[notification_id] = None
            self.rows[notification_id] = replace(n, updated_at=now)

    async def timeline(self, tenant_id: str, notification_id: UUID) -> list[StatusChange] | None:
        n = self._mine(tenant_id, notification_id)
        if n is None:
            return None
        return timeline(n.created_at, n.status, [c for i, c in self.history if i == notification_id])

    async def purge_status_history(self, older_than: datetime, limit: int) -> int:
        old = [entry for entry in self.history if entry[1].at < older_than][:limit]
        self.history = [entry for entry in self.history if entry not in old]
        return len(old)

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord] | None:
        if self._mine(tenant_id, notification_id) is None:
            return None
        return list(self.ledger.get(notification_id, []))

    # --- receipts ---

    async def record(self, receipt: Receipt) -> UUID | None:
        for n in self.rows.values():
            if (n.provider_message_id, n.provider) == (receipt.provider_message_id, receipt.provider):
                self.receipts.setdefault(n.id, []).append(receipt)
                return n.id
        return None

    async def of(self, tenant_id: str, notification_id: UUID) -> list[Receipt] | None:
        if self._mine(tenant_id, notification_id) is None:
            return None
        return list(self.receipts.get(notification_id, []))

    # --- operator actions ---

    def _dead(self, query: DeadLetterQuery) -> list[Notification]:
        def matches(n: Notification) -> bool:
            return (
                (query.tenant_id is None or n.tenant_id == query.tenant_id)
                and n.status is Status.FAILED
                and (query.channel is None or n.channel is query.channel)
                and (query.provider is None or n.provider == query.provider)
                and (
                    query.error_contains is None
                    or query.error_contains.lower() in (n.error_message or "").lower()
                )
                and (query.date_from is None or (n.failed_at is not None and n.failed_at >= query.date_from))
                and (query.date_to is None or (n.failed_at is not None and n.failed_at <= query.date_to))
            )

        return sorted(filter(matches, self.rows.values()), key=lambda n: n.id, reverse=True)

    async def dead_letters(self, query: DeadLetterQuery) -> Page:
        items = [n for n in self._dead(query) if query.after_id is None or n.id < query.after_id]
        return self._page(items, query.page_size)

    def _replay(self, n: Notification, now: datetime) -> Notification:
        replayed = self._store(
            transition(
                n,
                Status.PENDING,
                now,
                attempt_base=n.attempts,
                next_attempt_at=None,
                error_message=None,
                failed_at=None,
            )
        )
        self._enqueue(replayed, now)
        return replayed

    async def replay(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        n = self._mine(tenant_id, notification_id)
        if n is None:
            raise NotFound("not found")
        if n.status not in REPLAYABLE:
            raise IllegalTransition(n.status.value, Status.PENDING.value)
        return self._replay(n, now)

    async def count_dead_letters(self, query: DeadLetterQuery) -> int:
        return len(self._dead(query))

    async def replay_dead_letters(self, query: DeadLetterQuery, now: datetime, limit: int) -> int:
        picked = sorted(self._dead(query), key=lambda n: n.id)[:limit]
        for n in picked:
            self._replay(n, now)
        return len(picked)

    async def set_paused(
        self, tenant_id: str | None, channel: Channel | None, paused: bool, now: datetime
    ) -> None:
        tenant = tenant_id if tenant_id is not None else EVERY
        scope = (tenant, channel.value if channel else EVERY)
        if channel is None and not paused:
            self.paused = {s for s in self.paused if s[0] != tenant}
        elif paused:
            self.paused.add(scope)
        else:
            self.paused.discard(scope)

    async def pauses(self) -> Pauses:
        return Pauses(frozenset(self.paused))

    # --- sweeps ---

    def _to_pending(self, picked: list[Notification], now: datetime) -> int:
        for n in picked:
            self.leases.pop(n.id, None)
            moved = n if n.status is Status.PENDING else transition(n, Status.PENDING, now)
            self._enqueue(self._store(replace(moved, updated_at=now)), now)
        return len(picked)

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        due = sorted(
            (
                n
                for n in self.rows.values()
                if n.status is Status.SCHEDULED and n.scheduled_at is not None and n.scheduled_at <= now
            ),
            key=lambda n: (n.priority.rank, n.scheduled_at or now),  # highest priority first
        )
        return self._to_pending(due[:limit], now)

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        dead = sorted(
            (
                n
                for n in self.rows.values()
                if n.status is Status.PROCESSING and self.leases[n.id].lease_until < now
            ),
            key=lambda n: self.leases[n.id].lease_until,
        )
        return self._to_pending(dead[:limit], now)

    def _lost(self, n: Notification, waiting: Sequence[Waiting]) -> bool:
        """None of its dispatch records holds it: unpublished, or published with nothing showing it gone
        from its partition (read past, or beyond the end)."""
        ranges = {(w.priority, w.partition): (w.committed, w.end) for w in waiting}
        for r in self.outbox:
            if r.notification_id != n.id or r.kind is not OutboxKind.DISPATCH:
                continue
            if r.id not in self.published_at:
                return False
            at = self.positions.get(r.id)
            if at is None:
                continue
            span = ranges.get((r.priority, at.partition))
            if span is None or span[0] <= at.offset < span[1]:
                return False
        return True

    async def release_due_retries(
        self, now: datetime, limit: int, stale_before: datetime, waiting: Sequence[Waiting] | None = None
    ) -> int:
        def releasable(n: Notification) -> bool:
            at = self.enqueued_at.get(n.id)
            if at is None:
                return True
            return waiting is not None and at < stale_before and self._lost(n, waiting)

        due = sorted(
            (
                n
                for n in self.rows.values()
                if n.status is Status.RETRYING
                and n.next_attempt_at is not None
                and n.next_attempt_at <= now
                and releasable(n)
            ),
            key=lambda n: (n.priority.rank, n.next_attempt_at or now),  # highest priority first
        )[:limit]
        for n in due:
            self._enqueue(n, now)
        return len(due)

    async def requeue_parked(self, now: datetime, limit: int) -> int:
        pauses = Pauses(frozenset(self.paused))
        ready = sorted(
            (
                self.rows[i]
                for i in sorted(self.parked)
                if not pauses.blocks(self.rows[i].tenant_id, self.rows[i].channel.value)
            ),
            key=lambda n: n.priority.rank,  # highest priority first
        )
        return self._to_pending(ready[:limit], now)

    async def requeue_stale_pending(
        self, older_than: datetime, now: datetime, limit: int, waiting: Sequence[Waiting]
    ) -> int:
        stale = sorted(
            (
                n
                for n in self.rows.values()
                if n.status is Status.PENDING
                and (at := self.enqueued_at.get(n.id)) is not None
                and at < older_than
                and self._lost(n, waiting)
            ),
            key=lambda n: self.enqueued_at[n.id] or now,
        )
        return self._to_pending(stale[:limit], now)

    # --- Outbox ---

    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        waiting = [r for r in self.outbox if r.id not in self.published_at]
        dispatch = [r for r in waiting if r.kind is not OutboxKind.STATUS]
        batch = sorted(dispatch, key=lambda r: (r.priority.rank, r.id))[:limit]  # highest priority first
        batch += [r for r in waiting if r.kind is OutboxKind.STATUS][:limit]
        if not batch:
            return 0
        positions = await publish(batch)
        for i, r in enumerate(batch):
            self.published_at[r.id] = now
            if positions is not None:
                self.positions[r.id] = positions[i]
        return len(batch)

    async def purge_published(self, older_than: datetime) -> int:
        gone = {i for i, at in self.published_at.items() if at < older_than}
        self.outbox = [r for r in self.outbox if r.id not in gone]
        for i in gone:
            del self.published_at[i]
        return len(gone)

    async def backlog(self) -> int:
        return sum(1 for r in self.outbox if r.id not in self.published_at)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[OutboxRecord] = []
        self.fail_times = 0

    async def publish(self, records: Sequence[OutboxRecord]) -> list[Position]:
        """Each record lands at the next offset of partition 0."""
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("broker unreachable")
        first = len(self.published)
        self.published.extend(records)
        return [Position(0, first + i) for i in range(len(records))]


class FakeProvider:
    """Answers from a script of outcomes (a ProviderError to raise, or None for success), then succeeds."""

    def __init__(self, name: str = "fake", script: Sequence[ProviderError | None] = ()) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[ProviderMessage] = []

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        self.sent.append(message)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return ProviderReceipt(self.name, f"msg-{len(self.sent)}")


def rejecting_provider() -> FakeProvider:
    return FakeProvider(script=[PermanentProviderError("HTTP 400: bad number", status=400)])


def replace(n: Notification, **changes: object) -> Notification:
    return dataclasses.replace(n, **changes)  # type: ignore[arg-type]


class FakeBreaker:
    """A breaker that is open when told to be, and counts what it let through. ``half_open_for_s``: each call
    is a half-open trial; a transient failure raises TrialCallFailed and re-opens it for that long."""

    def __init__(
        self, name: str = "fake", *, open_for_s: float | None = None, half_open_for_s: float | None = None
    ) -> None:
        self.name = name
        self.open_for_s = open_for_s
        self.half_open_for_s = half_open_for_s
        self.calls = 0

    @property
    def state(self) -> str:
        return "open" if self.open_for_s is not None else "closed"

    def retry_after_s(self) -> float:
        return self.open_for_s or 0.0

    async def call(self, fn):  # type: ignore[no-untyped-def]
        if self.open_for_s is not None:
            raise CircuitOpen(f"{self.name} is open", retry_after_s=self.open_for_s)
        self.calls += 1
        if self.half_open_for_s is None:
            return await fn()
        try:
            return await fn()
        except TransientProviderError as exc:
            self.open_for_s = self.half_open_for_s  # the trial failed: open again
            raise TrialCallFailed.of(exc) from exc


class FakeLimiter:
    def __init__(self) -> None:
        self.acquired: list[str] = []

    async def acquire(self, key: str) -> float:
        self.acquired.append(key)
        return 0.0


class FakeDeliveryStats:
    """DeliveryStats that answers the figures it was given, and records each window start and purge."""

    def __init__(self, figures: dict[Channel, ChannelFigures] | None = None) -> None:
        self.figures_by_channel = figures or {}
        self.asked: list[tuple[str, datetime]] = []
        self.purged_before: list[datetime] = []

    async def figures(self, tenant_id: str, since: datetime) -> dict[Channel, ChannelFigures]:
        self.asked.append((tenant_id, since))
        return dict(self.figures_by_channel)

    async def purge(self, older_than: datetime) -> int:
        self.purged_before.append(older_than)
        return 0


class WaitingLimiter(FakeLimiter):
    """A FakeLimiter that says it made each caller wait ``wait_s``."""

    def __init__(self, wait_s: float) -> None:
        super().__init__()
        self.wait_s = wait_s

    async def acquire(self, key: str) -> float:
        await super().acquire(key)
        return self.wait_s


class BreakerInState(FakeBreaker):
    """A FakeBreaker that reports whatever ``state`` it is given (``half_open`` included)."""

    def __init__(self, name: str, state: str) -> None:
        super().__init__(name)
        self._state = state

    @property
    def state(self) -> str:
        return self._state


class RecordingObserver:
    """DeliveryObserver that records every call."""

    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []
        self.rounds: list[tuple[Notification, DeliveryResult, datetime]] = []

    def limiter_waited(self, channel: str, seconds: float) -> None:
        self.waits.append((channel, seconds))

    def round_finished(self, notification: Notification, result: DeliveryResult, stored_at: datetime) -> None:
        self.rounds.append((notification, result, stored_at))


class FakeTraceContexts:
    """TraceContexts that records each call and answers a distinct, valid traceparent for the n-th call."""

    def __init__(self) -> None:
        self.calls: list[tuple[UUID, UUID | None]] = []
        self.given: list[str] = []

    def for_notification(self, notification_id: UUID, batch_id: UUID | None) -> str | None:
        self.calls.append((notification_id, batch_id))
        n = len(self.calls)
        traceparent = f"00-{n:032x}-{n:016x}-01"
        self.given.append(traceparent)
        return traceparent


class FakeApiKeyStore:
    """In-memory ApiKeyStore; counts lookups."""

    def __init__(self) -> None:
        self.keys: dict[UUID, ApiKey] = {}
        self.lookups = 0
        self.tokens: dict[str, tuple[UUID, datetime, bool]] = {}  # hash -> (key id, expires, used)

    async def add(self, key: ApiKey) -> None:
        self.keys[key.id] = key

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return next((k for k in self.keys.values() if k.key_hash == key_hash), None)

    async def revoke(self, key_id: UUID, now: datetime) -> bool:
        key = self.keys.get(key_id)
        if key is None or not key.active:
            return False
        self.keys[key_id] = dataclasses.replace(key, revoked_at=now)
        return True

    async def all(self, tenant_id: str | None = None) -> list[ApiKey]:
        return [k for k in self.keys.values() if tenant_id is None or k.tenant_id == tenant_id]

    async def add_live_token(self, token_hash: str, key_id: UUID, expires_at: datetime) -> None:
        self.tokens[token_hash] = (key_id, expires_at, False)

    async def use_live_token(self, token_hash: str, now: datetime) -> ApiKey | None:
        found = self.tokens.get(token_hash)
        if found is None or found[2] or found[1] <= now:
            return None
        self.tokens[token_hash] = (found[0], found[1], True)
        return self.keys.get(found[0])


_event_seq = count(1)


def status_event(
    notification_id: str = "n-1",
    tenant_id: str = "t1",
    *,
    batch_id: str | None = None,
    channel: str = "sms",
    status: str = "delivered",
    error: str | None = None,
    seq: int | None = None,
    event_id: int | None = None,
) -> StatusEvent:
    """A status event as the status topic would carry it; ``seq`` grows on each call unless given."""
    return StatusEvent(
        event_id=event_id,
        notification_id=notification_id,
        tenant_id=tenant_id,
        batch_id=batch_id,
        channel=channel,
        status=status,
        previous_status="processing",
        attempt=1,
        error=error,
        provider="gw",
        timestamp="2026-01-01T12:00:00Z",
        seq=next(_event_seq) if seq is None else seq,
    )


class FakeDispatchQueue:
    """DispatchQueue that answers what it was told: the waiting ranges, or None (the broker cannot tell)."""

    def __init__(self, waiting: list[Waiting] | None = None) -> None:
        self.ranges = waiting
        self.asked = 0

    async def waiting(self) -> list[Waiting] | None:
        self.asked += 1
        return self.ranges


class FakeTenantProviderStore:
    """In-memory TenantProviderStore; ``reads`` counts gets (the worker's cache should spare most)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, Channel], StoredProviders] = {}
        self.reads = 0

    async def put(self, tenant_id: str, channel: Channel, providers: str, now: datetime) -> None:
        self.rows[(tenant_id, channel)] = StoredProviders(providers, now)

    async def get(self, tenant_id: str, channel: Channel) -> StoredProviders | None:
        self.reads += 1
        return self.rows.get((tenant_id, channel))

    async def all(self, tenant_id: str) -> dict[Channel, StoredProviders]:
        return {c: s for (t, c), s in self.rows.items() if t == tenant_id}

    async def delete(self, tenant_id: str, channel: Channel) -> bool:
        return self.rows.pop((tenant_id, channel), None) is not None


class FakeOverview:
    """Overview that answers what it was given, and records the windows it was asked for."""

    def __init__(
        self,
        *,
        counts: dict[Status, int] | None = None,
        outcomes: list[MinuteOutcomes] | None = None,
        reports: list[WorkerReport] | None = None,
        health: list[ProviderHealth] | None = None,
        unpublished: int = 0,
    ) -> None:
        self.counts = counts or {}
        self.outcomes = outcomes or []
        self.reports = reports or []
        self.health = health or []
        self.unpublished = unpublished
        self.asked: list[tuple[str, str | None, datetime]] = []

    async def status_counts(self, tenant_id: str | None, since: datetime) -> dict[Status, int]:
        self.asked.append(("counts", tenant_id, since))
        return dict(self.counts)

    async def outcomes_per_minute(self, tenant_id: str | None, since: datetime) -> list[MinuteOutcomes]:
        self.asked.append(("outcomes", tenant_id, since))
        return [o for o in self.outcomes if o.minute >= since]

    async def recent_batches(self, tenant_id: str | None, limit: int) -> list[BatchProgress]:
        return []

    async def provider_health(self, tenant_id: str | None, since: datetime) -> list[ProviderHealth]:
        self.asked.append(("health", tenant_id, since))
        return list(self.health)

    async def tenants(self) -> list[str]:
        return []

    async def unpublished_outbox(self) -> int:
        return self.unpublished

    async def worker_reports(self, since: datetime) -> list[WorkerReport]:
        self.asked.append(("reports", None, since))
        return [r for r in self.reports if r.reported_at >= since]


class FakeStatusEvents:
    """StatusEvents over a list of stored events (their ``event_id`` set); records each read."""

    def __init__(self, events: list[StatusEvent] | None = None) -> None:
        self.events = list(events or [])
        self.reads: list[tuple[str | None, int]] = []

    async def since(self, tenant_id: str | None, after_event_id: int, limit: int) -> list[StatusEvent]:
        self.reads.append((tenant_id, after_event_id))
        found = [
            e
            for e in sorted(self.events, key=lambda e: e.event_id or 0)
            if (e.event_id or 0) > after_event_id and (tenant_id is None or e.tenant_id == tenant_id)
        ]
        return found[:limit]


class FakeWebhookQueue:
    """WebhookQueue over in-memory deliveries; records what was stored."""

    def __init__(self, due: list[tuple[WebhookDelivery, WebhookEndpoint]] | None = None) -> None:
        self.due = list(due or [])
        self.recorded: list[tuple[int, DeliveryStatus, datetime | None, WebhookCall]] = []
        self.postponed: list[tuple[int, datetime]] = []
        self.succeeded: list[UUID] = []
        self.failures: dict[UUID, datetime] = {}  # endpoint -> failing since
        self.disabled: dict[UUID, str] = {}

    async def claim_due(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        taken, self.due = self.due[:limit], self.due[limit:]
        return taken

    async def record(
        self,
        delivery: WebhookDelivery,
        owner: str,
        call: WebhookCall,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        self.recorded.append((delivery.id, status, next_attempt_at, call))
        return True

    async def postpone(self, delivery: WebhookDelivery, owner: str, until: datetime) -> None:
        self.postponed.append((delivery.id, until))

    async def endpoint_succeeded(self, endpoint_id: UUID) -> None:
        self.succeeded.append(endpoint_id)
        self.failures.pop(endpoint_id, None)

    async def endpoint_failed(
        self, endpoint_id: UUID, now: datetime, disable_after_s: float, error: str
    ) -> bool:
        since = self.failures.setdefault(endpoint_id, now)
        if (now - since).total_seconds() >= disable_after_s and endpoint_id not in self.disabled:
            self.disabled[endpoint_id] = f"failing since {since.isoformat()}, last error: {error}"
            return True
        return False


class FakeWebhookSender:
    """Answers each call with the next status of ``answers`` (None: no answer), recording the calls."""

    def __init__(self, clock: FakeClock, answers: list[int | None]) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.sent: list[tuple[UUID, int]] = []

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> WebhookCall:
        self.sent.append((endpoint.id, delivery.id))
        status = self.answers.pop(0) if self.answers else 200
        return WebhookCall(now, now, status, None if status is not None and status < 300 else "refused")


class FakeTokenBuckets:
    """Shared token buckets in memory on a settable clock; records every call. ``failing`` makes the next
    calls raise, as a database that is away would."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[str, float, float, int]] = []
        self.failing: Exception | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    async def take(self, name: str, rate_per_s: float, capacity: float, want: int) -> Grant:
        self.calls.append((name, rate_per_s, capacity, want))
        if self.failing is not None:
            raise self.failing
        tokens, at = self._buckets.get(name, (capacity, self.now))
        available = min(capacity, tokens + (self.now - at) * rate_per_s)
        granted = max(0, min(want, int(available)))
        self._buckets[name] = (available - granted, self.now)
        wait_s = max(0.0, (min(want, capacity) - (available - granted)) / rate_per_s)
        return Grant(granted, wait_s)


class MeteredLimiter(FakeLimiter):
    """A FakeLimiter whose tokens come only when the test hands them out (``grant``), in asking order."""

    def __init__(self) -> None:
        super().__init__()
        self._tokens = asyncio.Semaphore(0)
        self.asking = 0

    def grant(self, tokens: int = 1) -> None:
        for _ in range(tokens):
            self._tokens.release()

    async def acquire(self, key: str) -> float:
        await super().acquire(key)
        self.asking += 1
        try:
            await self._tokens.acquire()
        finally:
            self.asking -= 1
        return 0.0
