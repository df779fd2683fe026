"""Hand-written fakes of the ports, for domain and app tests. They record what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from uuid import UUID

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
from notify.domain.model import Batch, Channel, Notification, Status, can_transition
from notify.ports.provider import ProviderMessage, ProviderReceipt
from notify.ports.stats import ChannelFigures
from notify.ports.store import (
    AttemptRecord,
    Claim,
    DeadLetterQuery,
    DeliveryResult,
    ListQuery,
    OutboxKind,
    OutboxRecord,
    Page,
    Publish,
)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FakeStore:
    """In-memory NotificationStore + Outbox following the same status machine as the real one."""

    def __init__(self) -> None:
        self.rows: dict[UUID, Notification] = {}
        self.leases: dict[UUID, Claim] = {}
        self.outbox: list[OutboxRecord] = []
        self.published_ids: set[int] = set()
        self.ledger: dict[UUID, list[AttemptRecord]] = {}
        self.parked: set[UUID] = set()
        self.paused: set[str] = set()
        self.released: set[UUID] = set()
        self.batches: dict[UUID, Batch] = {}

    # --- NotificationStore ---

    def _enqueue(self, n: Notification, now: datetime, kind: OutboxKind = OutboxKind.DISPATCH) -> None:
        self.outbox.append(
            OutboxRecord(len(self.outbox) + 1, n.id, n.priority, n.channel, n.correlation_id, now, kind)
        )

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
        if batch is not None:
            self.batches[batch.id] = batch
        for n in notifications:
            self.rows[n.id] = n
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
            if n.tenant_id == tenant_id and n.idempotency_key in keys
        }  # type: ignore[misc]

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
        n = self.rows.get(notification_id)
        return n if n and n.tenant_id == tenant_id else None

    async def search(self, query: ListQuery) -> Page:
        items = sorted(
            (n for n in self.rows.values() if n.tenant_id == query.tenant_id),
            key=lambda n: n.id,
            reverse=True,
        )
        if query.status:
            items = [n for n in items if n.status is query.status]
        if query.after_id:
            items = [n for n in items if n.id < query.after_id]
        page = items[: query.page_size]
        return Page(page, page[-1].id if len(items) > query.page_size else None)

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        n = await self.get(tenant_id, notification_id)
        if n is None:
            raise NotFound("not found")
        if not can_transition(n.status, Status.CANCELLED):
            raise IllegalTransition(n.status.value, Status.CANCELLED.value)
        self.rows[n.id] = n.transition(Status.CANCELLED, now)
        return self.rows[n.id]

    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> Notification | None:
        n = self.rows.get(notification_id)
        if n is None or n.status not in (Status.PENDING, Status.RETRYING):
            return None
        if n.status is Status.RETRYING and n.next_attempt_at is not None and n.next_attempt_at > now:
            return None
        if n.expires_at is not None and n.expires_at <= now:
            self.rows[n.id] = n.transition(Status.EXPIRED, now)
            return self.rows[n.id]
        self.rows[n.id] = n.transition(Status.PROCESSING, now, next_attempt_at=None)
        self.leases[n.id] = claim
        return self.rows[n.id]

    def _holds(self, notification_id: UUID, claim: Claim) -> bool:
        n = self.rows.get(notification_id)
        return n is not None and n.status is Status.PROCESSING and self.leases.get(notification_id) == claim

    async def record_result(
        self, notification_id: UUID, claim: Claim, now: datetime, result: DeliveryResult
    ) -> bool:
        if not self._holds(notification_id, claim):
            return False
        n = self.rows[notification_id]
        self.rows[n.id] = n.transition(
            result.status,
            now,
            attempts=n.attempts + (1 if result.counts_as_attempt else 0),
            provider=result.provider or n.provider,
            provider_message_id=result.provider_message_id,
            error_message=result.error,
            next_attempt_at=result.next_attempt_at,
            sent_at=now if result.status is Status.DELIVERED else None,
            failed_at=now if result.status is Status.FAILED else None,
        )
        self.ledger.setdefault(n.id, []).extend(result.calls)
        if result.status is Status.FAILED:
            self._enqueue(n, now, OutboxKind.DEAD_LETTER)
        del self.leases[n.id]
        return True

    async def park(self, notification_id: UUID, now: datetime) -> None:
        self.parked.add(notification_id)

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord] | None:
        if await self.get(tenant_id, notification_id) is None:
            return None
        return list(self.ledger.get(notification_id, []))

    async def dead_letters(self, query: DeadLetterQuery) -> Page:
        items = [
            n for n in self.rows.values() if n.tenant_id == query.tenant_id and n.status is Status.FAILED
        ]
        return Page(sorted(items, key=lambda n: n.id, reverse=True)[: query.page_size], None)

    async def replay(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        n = await self.get(tenant_id, notification_id)
        if n is None:
            raise NotFound("not found")
        replayed = n.transition(
            Status.PENDING, now, attempt_base=n.attempts, error_message=None, failed_at=None
        )
        self.rows[n.id] = replayed
        self._enqueue(replayed, now)
        return replayed

    async def replay_dead_letters(self, query: DeadLetterQuery, now: datetime, dry_run: bool) -> int:
        page = await self.dead_letters(query)
        if not dry_run:
            for n in page.items:
                await self.replay(n.tenant_id, n.id, now)
        return len(page.items)

    async def set_paused(self, channel: Channel | None, paused: bool, now: datetime) -> None:
        scope = channel.value if channel else "*"
        if channel is None and not paused:
            self.paused.clear()
        elif paused:
            self.paused.add(scope)
        else:
            self.paused.discard(scope)

    async def paused_channels(self) -> set[str]:
        return set(self.paused)

    async def release_due_retries(self, now: datetime, limit: int, stale_before: datetime) -> int:
        due = [
            n
            for n in self.rows.values()
            if n.status is Status.RETRYING
            and n.next_attempt_at
            and n.next_attempt_at <= now
            and n.id not in self.released
        ][:limit]
        for n in due:
            self.released.add(n.id)
            self._enqueue(n, now)
        return len(due)

    async def requeue_parked(self, now: datetime, limit: int) -> int:
        if "*" in self.paused:
            return 0
        ready = [i for i in self.parked if self.rows[i].channel.value not in self.paused][:limit]
        for i in ready:
            self.parked.discard(i)
            self._enqueue(self.rows[i], now)
        return len(ready)

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        due = [
            n
            for n in self.rows.values()
            if n.status is Status.SCHEDULED and n.scheduled_at is not None and n.scheduled_at <= now
        ][:limit]
        for n in due:
            self.rows[n.id] = n.transition(Status.PENDING, now)
            self._enqueue(n, now)
        return len(due)

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        dead = [
            n
            for n in self.rows.values()
            if n.status is Status.PROCESSING and self.leases[n.id].lease_until < now
        ][:limit]
        for n in dead:
            self.rows[n.id] = n.transition(Status.PENDING, now)
            del self.leases[n.id]
            self._enqueue(n, now)
        return len(dead)

    async def requeue_stale_pending(self, older_than: datetime, now: datetime, limit: int) -> int:
        return 0

    # --- Outbox ---

    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        batch = [r for r in self.outbox if r.id not in self.published_ids][:limit]
        if not batch:
            return 0
        await publish(batch)
        self.published_ids.update(r.id for r in batch)
        return len(batch)

    async def purge_published(self, older_than: datetime) -> int:
        return 0

    async def backlog(self) -> int:
        return len([r for r in self.outbox if r.id not in self.published_ids])


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[OutboxRecord] = []
        self.fail_times = 0

    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("broker unreachable")
        self.published.extend(records)


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
) -> StatusEvent:
    """A status event as the status topic would carry it; ``seq`` grows on each call unless given."""
    return StatusEvent(
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
