"""One contract for the store, run against both implementations: the hand-written fake the app tests use and
PostgreSQL. A scenario that passes on one and fails on the other is a fake that lies (or a store that does).

Everything goes through the ports (NotificationStore, Outbox); what a scenario checks is what the app relies
on: statuses, fields, the outbox records (dispatch, dead letter, and the status events PostgreSQL writes in
a trigger), filters and paging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from notify.adapters.postgres.receipts import PgReceipts
from notify.adapters.postgres.store import PgNotificationStore, PgOutbox
from notify.app.notifications import NewNotification, NotificationService
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.errors import DuplicateIdempotencyKey, IllegalTransition, NotFound
from notify.domain.ids import uuid7_at
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.outbox import OutboxKind, OutboxRecord
from notify.domain.pauses import Pauses
from notify.domain.queries import DeadLetterQuery, ListQuery
from notify.domain.receipts import Receipt, ReceiptStatus
from notify.domain.timeline import StatusChange
from notify.ports.queue import Position, Waiting
from notify.ports.receipts import Receipts
from notify.ports.store import NotificationStore, Outbox
from tests.fakes import FakeClock, FakeStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Kit:
    store: NotificationStore
    outbox: Outbox
    receipts: Receipts
    clock: FakeClock
    service: NotificationService
    unread: list[OutboxRecord] = field(default_factory=list)
    landed: dict[UUID, Position] = field(default_factory=dict)  # where each dispatch record went last

    async def sms(self, tenant: str = "t1", **fields: Any) -> Notification:
        """Accepted through the real use case; a millisecond later than the one before (ids are ordered)."""
        values: dict[str, Any] = {"channel": Channel.SMS, "recipient": "+14155550123", "content": "hi"}
        values.update(fields)
        self.clock.advance(0.001)
        return await self.service.create(tenant, NewNotification(**values))

    def draft(self, tenant: str = "t1", **fields: Any) -> Notification:
        """A notification not stored yet, built by hand (for what the use case would refuse to build)."""
        self.clock.advance(0.001)
        now = self.clock.now()
        values: dict[str, Any] = {
            "id": uuid7_at(now),
            "tenant_id": tenant,
            "channel": Channel.PUSH,
            "recipient": "tok",
            "content": "x",
            "priority": Priority.NORMAL,
            "status": Status.PENDING,
            "created_at": now,
            "updated_at": now,
        }
        values.update(fields)
        return Notification(**values)

    async def drain(self) -> list[OutboxRecord]:
        """Every record not yet published, as the relay publishes them (marking them published)."""
        sent: list[OutboxRecord] = []

        async def publish(records: Sequence[OutboxRecord]) -> list[Position]:
            # Every record lands on partition 0 of its topic, at the next offset.
            positions = [Position(0, len(sent) + i) for i in range(len(records))]
            sent.extend(records)
            for r, p in zip(records, positions, strict=True):
                if r.kind is OutboxKind.DISPATCH:
                    self.landed[r.notification_id] = p
            return positions

        while await self.outbox.relay_batch(100, publish, self.clock.now()):
            pass
        self.unread += sent
        return sent

    async def events(self) -> list[tuple[str, str, str, int]]:
        """Status events published since the last call: (notification, previous status, status, attempt)."""
        await self.drain()
        events = [r for r in self.unread if r.kind is OutboxKind.STATUS]
        self.unread = [r for r in self.unread if r.kind is not OutboxKind.STATUS]
        return [
            (str(p["notification_id"]), p["previous_status"], p["status"], p["attempt"])
            for r in events
            if (p := r.payload) is not None
        ]

    async def dispatched(self) -> list[tuple[UUID, OutboxKind]]:
        """Dispatch and dead-letter records published since the last call."""
        await self.drain()
        records = [r for r in self.unread if r.kind is not OutboxKind.STATUS]
        self.unread = [r for r in self.unread if r.kind is OutboxKind.STATUS]
        return [(r.notification_id, r.kind) for r in records]

    def forget(self) -> None:
        self.unread = []


@pytest.fixture(params=["fake", "postgres"])
def kit(request: pytest.FixtureRequest) -> Kit:
    clock = FakeClock(T0)
    if request.param == "fake":
        fake = FakeStore()
        store: NotificationStore = fake
        outbox: Outbox = fake
        receipts: Receipts = fake
    else:
        pool = request.getfixturevalue("pool")  # a fresh migrated database
        store, outbox, receipts = PgNotificationStore(pool), PgOutbox(pool), PgReceipts(pool)
    return Kit(store, outbox, receipts, clock, NotificationService(store, clock))


def claim(worker: str = "w1", lease_s: float = 30) -> Claim:
    return Claim(worker, T0 + timedelta(days=1, seconds=lease_s))


def attempt(outcome: AttemptOutcome, n: int = 1, *, trial: bool = False, at: datetime = T0) -> AttemptRecord:
    return AttemptRecord(
        n,
        "gw",
        at,
        at + timedelta(milliseconds=20),
        outcome,
        503 if outcome is not AttemptOutcome.DELIVERED else None,
        None if outcome is AttemptOutcome.DELIVERED else "HTTP 503",
        breaker_trial=trial,
    )


# --- accepting and reading ----------------------------------------------------------------------------------


async def test_create_get_and_tenant_isolation(kit: Kit) -> None:
    n = await kit.sms(idempotency_key="k1", metadata={"a": 1})
    got = await kit.store.get("t1", n.id)
    assert got == n
    assert await kit.store.get("other", n.id) is None
    assert await kit.store.find_by_idempotency_key("t1", "k1") == n
    assert await kit.store.find_by_idempotency_key("other", "k1") is None
    assert await kit.store.used_idempotency_keys("t1", ["k1", "k2"]) == {"k1"}
    assert await kit.dispatched() == [(n.id, OutboxKind.DISPATCH)]
    assert await kit.events() == []  # creating is not a transition


async def test_an_idempotency_key_is_taken_once_per_tenant(kit: Kit) -> None:
    first = await kit.sms(idempotency_key="same")
    duplicate = kit.draft(idempotency_key="same")  # a concurrent duplicate that got past the lookup
    with pytest.raises(DuplicateIdempotencyKey):
        await kit.store.create([duplicate])
    assert await kit.outbox.backlog() == 1  # nothing of the refused one was written
    assert await kit.sms("t2", idempotency_key="same")  # another tenant's key space
    assert await kit.store.find_by_idempotency_key("t1", "same") == first


async def test_a_batch_is_stored_whole_with_its_counts(kit: Kit) -> None:
    batch_id = uuid7_at(T0)
    batch = Batch(batch_id, "t1", 3, T0, idempotency_key="b1")
    items = [kit.draft(batch_id=batch_id, recipient=f"tok{i}") for i in range(3)]
    await kit.store.create(items, batch)
    assert await kit.store.get_batch("t1", batch.id) == batch
    assert await kit.store.get_batch("t2", batch.id) is None
    assert await kit.store.find_batch_by_idempotency_key("t1", "b1") == batch
    assert [n.id for n in await kit.store.batch_notifications(batch)] == sorted(n.id for n in items)
    assert await kit.store.batch_counts(batch.id) == {Status.PENDING: 3}
    again = Batch(uuid7_at(T0), "t1", 1, T0, idempotency_key="b1")
    with pytest.raises(DuplicateIdempotencyKey) as raised:
        await kit.store.create([kit.draft(batch_id=again.id)], again)
    assert raised.value.batch
    assert await kit.outbox.backlog() == 3


async def test_search_filters_and_pages_newest_first(kit: Kit) -> None:
    made: list[Notification] = []
    for i in range(6):
        kit.clock.advance(60)
        made.append(
            await kit.sms(
                channel=Channel.EMAIL if i % 2 else Channel.SMS,
                recipient=f"u{i}@example.com" if i % 2 else "+14155550123",
                priority=Priority.HIGH if i < 3 else Priority.LOW,
            )
        )
    await kit.sms("t2")
    await kit.store.cancel("t1", made[0].id, kit.clock.now())

    async def ids(**filters: Any) -> list[UUID]:
        return [n.id for n in (await kit.store.search(ListQuery("t1", **filters))).items]

    newest_first = [n.id for n in reversed(made)]
    assert await ids() == newest_first
    assert await ids(channel=Channel.EMAIL) == [made[5].id, made[3].id, made[1].id]
    assert await ids(priority=Priority.HIGH) == [made[2].id, made[1].id, made[0].id]
    assert await ids(status=Status.CANCELLED) == [made[0].id]
    assert await ids(recipient="u3@example.com") == [made[3].id]
    assert await ids(date_from=made[2].created_at, date_to=made[4].created_at) == [
        made[4].id,
        made[3].id,
        made[2].id,
    ]
    first = await kit.store.search(ListQuery("t1", page_size=4))
    assert [n.id for n in first.items] == newest_first[:4] and first.next_after_id == made[2].id
    rest = await kit.store.search(ListQuery("t1", page_size=4, after_id=first.next_after_id))
    assert [n.id for n in rest.items] == newest_first[4:] and rest.next_after_id is None


# --- cancel ----------------------------------------------------------------------------------------------


async def test_cancel_from_pending_scheduled_and_retrying_only(kit: Kit) -> None:
    pending = await kit.sms()
    scheduled = await kit.sms(scheduled_at=T0 + timedelta(hours=1))
    retrying = await kit.sms()
    await kit.store.claim(retrying.id, claim(), kit.clock.now())
    await kit.store.record_result(
        retrying.id,
        claim(),
        kit.clock.now(),
        DeliveryResult(
            Status.RETRYING,
            [attempt(AttemptOutcome.TRANSIENT)],
            provider="gw",
            error="HTTP 503",
            next_attempt_at=T0 + timedelta(seconds=5),
        ),
    )
    delivered = await kit.sms()
    await kit.store.claim(delivered.id, claim(), kit.clock.now())
    await kit.store.record_result(
        delivered.id,
        claim(),
        kit.clock.now(),
        DeliveryResult(
            Status.DELIVERED, [attempt(AttemptOutcome.DELIVERED)], provider="gw", provider_message_id="m"
        ),
    )
    await kit.events()
    kit.clock.advance(1)
    for n in (pending, scheduled, retrying):
        cancelled = await kit.store.cancel("t1", n.id, kit.clock.now())
        assert (cancelled.status, cancelled.updated_at) == (Status.CANCELLED, kit.clock.now())
    with pytest.raises(IllegalTransition):
        await kit.store.cancel("t1", delivered.id, kit.clock.now())
    with pytest.raises(NotFound):
        await kit.store.cancel("t2", pending.id, kit.clock.now())
    assert await kit.events() == [
        (str(pending.id), "pending", "cancelled", 0),
        (str(scheduled.id), "scheduled", "cancelled", 0),
        (str(retrying.id), "retrying", "cancelled", 1),
    ]
    assert await kit.store.claim(pending.id, claim(), kit.clock.now()) is None  # never sent after a cancel


# --- the delivery ledger -----------------------------------------------------------------------------------


async def test_a_claim_is_exclusive_and_only_the_current_claim_stores_the_outcome(kit: Kit) -> None:
    n = await kit.sms()
    mine = await kit.store.claim(n.id, claim("w1"), kit.clock.now())
    assert mine is not None and mine.status is Status.PROCESSING
    assert (
        await kit.store.claim(n.id, claim("w2"), kit.clock.now()) is None
    )  # a duplicate record, a second worker
    lost = DeliveryResult(Status.DELIVERED, [attempt(AttemptOutcome.DELIVERED)], provider="gw")
    assert not await kit.store.record_result(n.id, claim("w2"), kit.clock.now(), lost)
    # Only the holder extends the lease, and the extended claim still stores the outcome.
    assert not await kit.store.extend_lease(n.id, claim("w2", 600), kit.clock.now())
    assert await kit.store.extend_lease(n.id, claim("w1", 600), kit.clock.now())
    kit.clock.advance(2)
    ok = DeliveryResult(
        Status.DELIVERED, [attempt(AttemptOutcome.DELIVERED)], provider="gw", provider_message_id="m-1"
    )
    assert await kit.store.record_result(n.id, claim("w1"), kit.clock.now(), ok)
    stored = await kit.store.get("t1", n.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.provider, stored.provider_message_id, stored.sent_at) == (
        Status.DELIVERED,
        1,
        "gw",
        "m-1",
        kit.clock.now(),
    )
    assert not await kit.store.record_result(n.id, claim("w1"), kit.clock.now(), ok)  # once only
    assert await kit.events() == [
        (str(n.id), "pending", "processing", 1),
        (str(n.id), "processing", "delivered", 1),
    ]
    assert await kit.store.attempts("t1", n.id) == ok.calls
    assert await kit.store.attempts("t2", n.id) is None


async def test_retry_then_failure_counts_attempts_but_not_breaker_trials(kit: Kit) -> None:
    n = await kit.sms()  # normal: the store keeps whatever the policy decided
    due = T0 + timedelta(seconds=3)
    await kit.store.claim(n.id, claim(), kit.clock.now())
    retry = DeliveryResult(
        Status.RETRYING,
        [attempt(AttemptOutcome.TRANSIENT)],
        provider="gw",
        error="HTTP 503",
        next_attempt_at=due,
    )
    assert await kit.store.record_result(n.id, claim(), kit.clock.now(), retry)
    assert await kit.store.claim(n.id, claim(), kit.clock.now()) is None  # not due yet
    kit.clock.advance(3)
    assert await kit.store.claim(n.id, claim(), kit.clock.now()) is not None
    trial = DeliveryResult(
        Status.RETRYING,
        [attempt(AttemptOutcome.TRANSIENT, 2, trial=True)],
        provider="gw",
        error="breaker trial failed",
        next_attempt_at=kit.clock.now() + timedelta(seconds=30),
    )
    assert await kit.store.record_result(n.id, claim(), kit.clock.now(), trial)
    waiting = await kit.store.get("t1", n.id)
    assert waiting is not None and waiting.attempts == 1  # the trial used no retry
    kit.clock.advance(30)
    assert await kit.store.claim(n.id, claim(), kit.clock.now()) is not None
    failed = DeliveryResult(
        Status.FAILED, [attempt(AttemptOutcome.PERMANENT, 2)], provider="gw", error="HTTP 400"
    )
    assert await kit.store.record_result(n.id, claim(), kit.clock.now(), failed)
    final = await kit.store.get("t1", n.id)
    assert final is not None
    assert (final.status, final.attempts, final.error_message, final.failed_at, final.next_attempt_at) == (
        Status.FAILED,
        2,
        "HTTP 400",
        kit.clock.now(),
        None,
    )
    ledger = await kit.store.attempts("t1", n.id)
    assert ledger is not None and [(a.attempt, a.breaker_trial) for a in ledger] == [
        (1, False),
        (2, True),
        (2, False),
    ]
    records = await kit.drain()
    events = [r.payload for r in records if r.kind is OutboxKind.STATUS and r.payload]
    assert [(e["status"], e["attempt"], e["error"]) for e in events] == [
        ("processing", 1, None),
        ("retrying", 1, "HTTP 503"),
        ("processing", 2, None),
        ("retrying", 1, "breaker trial failed"),
        ("processing", 2, None),
        ("failed", 2, "HTTP 400"),
    ]
    assert events[1]["next_attempt_at"] == "2026-03-01T09:00:03.000000Z"
    assert {e["tenant_id"] for e in events} == {"t1"} and {e["channel"] for e in events} == {"sms"}
    assert [(r.notification_id, r.kind) for r in records if r.kind is not OutboxKind.STATUS] == [
        (n.id, OutboxKind.DISPATCH),
        (n.id, OutboxKind.DEAD_LETTER),
    ]


async def test_a_notification_past_its_expiry_is_expired_by_the_claim(kit: Kit) -> None:
    n = await kit.sms(expires_at=T0 + timedelta(minutes=1))
    kit.clock.advance(61)
    expired = await kit.store.claim(n.id, claim(), kit.clock.now())
    assert expired is not None and expired.status is Status.EXPIRED
    await kit.drain()
    kit.forget()
    assert await kit.store.claim(n.id, claim(), kit.clock.now()) is None


# --- operator actions --------------------------------------------------------------------------------------


async def _fail(kit: Kit, n: Notification, provider: str, error: str) -> None:
    await kit.store.claim(n.id, claim(), kit.clock.now())
    result = DeliveryResult(
        Status.FAILED, [attempt(AttemptOutcome.PERMANENT)], provider=provider, error=error
    )
    assert await kit.store.record_result(n.id, claim(), kit.clock.now(), result)


async def test_dead_letters_filter_page_and_replay(kit: Kit) -> None:
    a = await kit.sms()
    b = await kit.sms(channel=Channel.EMAIL, recipient="a@example.com")
    c = await kit.sms()
    await _fail(kit, a, "gw-a", "HTTP 400: Bad Number")
    kit.clock.advance(60)
    await _fail(kit, b, "gw-b", "retries exhausted after 4 attempts: HTTP 503")
    kit.clock.advance(60)
    await _fail(kit, c, "gw-a", "retries EXHAUSTED after 4 attempts: timeout")
    await kit.sms()  # not failed
    await _fail(kit, await kit.sms("t2"), "gw-a", "HTTP 400")

    async def ids(**filters: Any) -> list[UUID]:
        return [n.id for n in (await kit.store.dead_letters(DeadLetterQuery("t1", **filters))).items]

    assert await ids() == [c.id, b.id, a.id]
    assert await ids(channel=Channel.EMAIL) == [b.id]
    assert await ids(provider="gw-a") == [c.id, a.id]
    assert await ids(error_contains="exhausted") == [c.id, b.id]
    assert await ids(date_from=T0 + timedelta(seconds=30), date_to=T0 + timedelta(seconds=90)) == [b.id]
    first = await kit.store.dead_letters(DeadLetterQuery("t1", page_size=2))
    assert [n.id for n in first.items] == [c.id, b.id] and first.next_after_id == b.id
    rest = await kit.store.dead_letters(DeadLetterQuery("t1", page_size=2, after_id=b.id))
    assert [n.id for n in rest.items] == [a.id] and rest.next_after_id is None

    query = DeadLetterQuery("t1", error_contains="exhausted")
    assert await kit.store.count_dead_letters(query) == 2
    assert await ids() == [c.id, b.id, a.id]  # counting changes nothing
    await kit.drain()
    kit.forget()
    assert await kit.store.replay_dead_letters(query, kit.clock.now(), limit=1) == 1  # bounded, oldest first
    assert await ids() == [c.id, a.id]
    assert await kit.store.replay_dead_letters(query, kit.clock.now(), limit=1) == 1
    assert await kit.store.replay_dead_letters(query, kit.clock.now(), limit=1) == 0
    assert await ids() == [a.id]
    replayed = await kit.store.get("t1", b.id)
    assert replayed is not None
    assert (replayed.status, replayed.attempt_base, replayed.error_message, replayed.failed_at) == (
        Status.PENDING,
        1,
        None,
        None,
    )
    assert sorted(await kit.dispatched()) == sorted(
        [(b.id, OutboxKind.DISPATCH), (c.id, OutboxKind.DISPATCH)]
    )


async def test_replay_is_for_failed_and_expired_only(kit: Kit) -> None:
    failed = await kit.sms()
    await _fail(kit, failed, "gw", "HTTP 400")
    expired = await kit.sms(expires_at=T0 + timedelta(seconds=1))
    kit.clock.advance(2)
    await kit.store.claim(expired.id, claim(), kit.clock.now())
    in_flight = await kit.sms()
    await kit.store.claim(in_flight.id, claim(), kit.clock.now())
    pending = await kit.sms()
    scheduled = await kit.sms(scheduled_at=kit.clock.now() + timedelta(hours=1))
    for n in (failed, expired):
        assert (await kit.store.replay("t1", n.id, kit.clock.now())).status is Status.PENDING
    for n in (in_flight, pending, scheduled, failed):  # failed: now pending again
        with pytest.raises(IllegalTransition):
            await kit.store.replay("t1", n.id, kit.clock.now())
    with pytest.raises(NotFound):
        await kit.store.replay("t2", expired.id, kit.clock.now())
    still = await kit.store.get("t1", in_flight.id)
    assert still is not None and still.status is Status.PROCESSING


async def test_pauses_global_and_per_tenant_park_and_requeue(kit: Kit) -> None:
    now = kit.clock.now()
    await kit.store.set_paused("t1", Channel.SMS, True, now)  # tenant t1's own sms
    assert await kit.store.pauses() == Pauses(frozenset({("t1", "sms")}))
    mine, theirs = await kit.sms("t1"), await kit.sms("t2")
    await kit.drain()
    kit.forget()
    for n in (mine, theirs):  # a worker that saw each record under the pause in force
        await kit.store.park(n.id, now)
    assert await kit.store.requeue_parked(now, 10) == 1  # t2 is not paused
    assert await kit.dispatched() == [(theirs.id, OutboxKind.DISPATCH)]
    await kit.store.set_paused(None, None, True, now)  # the operator's switch: everyone
    await kit.store.set_paused("t1", Channel.SMS, False, now)
    assert await kit.store.pauses() == Pauses(frozenset({("*", "*")}))
    assert await kit.store.requeue_parked(now, 10) == 0  # everything is still paused
    await kit.store.set_paused("t1", None, True, now)
    await kit.store.set_paused(None, None, False, now)  # resumes the global switch only
    assert await kit.store.pauses() == Pauses(frozenset({("t1", "*")}))
    assert await kit.store.requeue_parked(now, 10) == 0
    await kit.store.set_paused("t1", None, False, now)
    assert await kit.store.pauses() == Pauses(frozenset())
    assert await kit.store.requeue_parked(now, 10) == 1
    assert await kit.store.requeue_parked(now, 10) == 0  # once
    assert await kit.dispatched() == [(mine.id, OutboxKind.DISPATCH)]
    assert await kit.events() == []  # parked and requeued, but pending all along


# --- sweeps ------------------------------------------------------------------------------------------------


async def test_sweeps_release_scheduled_recover_leases_and_requeue_what_was_lost(kit: Kit) -> None:
    later = await kit.sms(scheduled_at=T0 + timedelta(seconds=10))
    held = await kit.sms()
    await kit.store.claim(held.id, Claim("dead-worker", T0 + timedelta(seconds=5)), kit.clock.now())
    stale = await kit.sms()
    await kit.drain()
    kit.forget()
    kit.clock.advance(11)
    now = kit.clock.now()
    assert await kit.store.release_due_scheduled(now, 10) == 1
    assert await kit.store.recover_expired_leases(now, 10) == 1
    # Every pending one enqueued before the threshold: the records of `later` and `held` were just written
    # (and are not even published), so only `stale` (enqueued at T0) can count as lost; and only when its
    # record is not still waiting in its partition behind the group's lag.
    at = kit.landed[stale.id].offset
    behind_lag = [Waiting(Priority.NORMAL, 0, at, at + 5)]
    assert await kit.store.requeue_stale_pending(T0 + timedelta(seconds=1), now, 10, behind_lag) == 0
    unknown = [Waiting(Priority.NORMAL, 1, 0, 0)]  # nothing said about its partition: nothing shows it gone
    assert await kit.store.requeue_stale_pending(T0 + timedelta(seconds=1), now, 10, unknown) == 0
    other_partition = [Waiting(Priority.NORMAL, 1, 0, at + 5), Waiting(Priority.HIGH, 0, 0, at + 5)]
    read_already = [Waiting(Priority.NORMAL, 0, at + 1, at + 5), *other_partition]
    assert await kit.store.requeue_stale_pending(T0 + timedelta(seconds=1), now, 10, read_already) == 1
    assert sorted(await kit.dispatched()) == sorted(
        [(later.id, OutboxKind.DISPATCH), (held.id, OutboxKind.DISPATCH), (stale.id, OutboxKind.DISPATCH)]
    )
    assert await kit.events() == [
        (str(later.id), "scheduled", "pending", 0),
        (str(held.id), "processing", "pending", 0),
    ]
    assert not await kit.store.record_result(  # the dead worker's late answer is refused
        held.id, Claim("dead-worker", T0), now, DeliveryResult(Status.DELIVERED, [], provider="gw")
    )
    assert not await kit.store.extend_lease(held.id, Claim("dead-worker", now + timedelta(minutes=1)), now)


async def test_a_due_retry_is_released_once_and_again_only_when_its_record_was_lost(kit: Kit) -> None:
    n = await kit.sms()
    await kit.store.claim(n.id, claim(), kit.clock.now())
    await kit.store.record_result(
        n.id,
        claim(),
        kit.clock.now(),
        DeliveryResult(
            Status.RETRYING,
            [attempt(AttemptOutcome.TRANSIENT)],
            provider="gw",
            error="x",
            next_attempt_at=T0 + timedelta(seconds=2),
        ),
    )
    await kit.drain()
    kit.forget()
    assert await kit.store.release_due_retries(kit.clock.now(), 10, T0 - timedelta(minutes=2)) == 0  # not due
    kit.clock.advance(2)
    now = kit.clock.now()
    assert await kit.store.release_due_retries(now, 10, now - timedelta(minutes=2)) == 1
    assert await kit.store.release_due_retries(now, 10, now - timedelta(minutes=2)) == 0  # released already
    await kit.drain()  # the released record is published
    kit.clock.advance(180)
    now = kit.clock.now()
    stale_before = now - timedelta(minutes=2)
    at = kit.landed[n.id].offset
    # Three minutes later and still not claimed: while its record waits behind the lag it is left alone (and
    # when the broker cannot tell, too); once the broker no longer has it (a restart), it is released again.
    assert (
        await kit.store.release_due_retries(now, 10, stale_before, [Waiting(Priority.NORMAL, 0, at, at + 1)])
        == 0
    )
    assert await kit.store.release_due_retries(now, 10, stale_before, None) == 0
    assert (
        await kit.store.release_due_retries(now, 10, stale_before, [Waiting(Priority.NORMAL, 0, 0, at)]) == 1
    )
    assert await kit.dispatched() == [(n.id, OutboxKind.DISPATCH)] * 2
    assert await kit.events() == []  # released, but retrying all along


async def test_sweeps_release_the_highest_priority_first(kit: Kit) -> None:
    """A due high notification is released before a backlog of due low ones, even those due earlier: a
    campaign scheduled for the same minute, the retries after an outage, a paused channel resumed."""
    lows = [await kit.sms(priority=Priority.LOW, scheduled_at=T0 + timedelta(seconds=10)) for _ in range(2)]
    high = await kit.sms(priority=Priority.HIGH, scheduled_at=T0 + timedelta(seconds=20))
    kit.clock.advance(21)
    assert await kit.store.release_due_scheduled(kit.clock.now(), 2) == 2
    statuses = [(await kit.store.get("t1", n.id)) for n in (high, *lows)]
    assert [n.status if n else None for n in statuses] == [Status.PENDING, Status.PENDING, Status.SCHEDULED]

    retrying: list[Notification] = []
    for priority, due_s in ((Priority.LOW, 1), (Priority.LOW, 1), (Priority.HIGH, 2)):
        n = await kit.sms(priority=priority)
        await kit.store.claim(n.id, claim(), kit.clock.now())
        due = kit.clock.now() + timedelta(seconds=due_s)
        result = DeliveryResult(
            Status.RETRYING, [attempt(AttemptOutcome.TRANSIENT)], "gw", None, "x", next_attempt_at=due
        )
        assert await kit.store.record_result(n.id, claim(), kit.clock.now(), result)
        retrying.append(n)
    await kit.drain()
    kit.forget()
    kit.clock.advance(3)
    now = kit.clock.now()
    assert await kit.store.release_due_retries(now, 1, now - timedelta(minutes=2)) == 1
    assert await kit.dispatched() == [(retrying[2].id, OutboxKind.DISPATCH)]

    parked = [await kit.sms(priority=p) for p in (Priority.LOW, Priority.NORMAL, Priority.HIGH)]
    await kit.drain()
    kit.forget()
    for n in parked:
        await kit.store.park(n.id, now)
    assert await kit.store.requeue_parked(now, 2) == 2
    assert [n for n, _ in await kit.dispatched()] == [parked[2].id, parked[1].id]


# --- the outbox --------------------------------------------------------------------------------------------


async def test_relay_marks_what_it_published_and_nothing_when_publishing_fails(kit: Kit) -> None:
    made = [await kit.sms() for _ in range(3)]
    assert await kit.outbox.backlog() == 3

    async def broken(records: Sequence[OutboxRecord]) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await kit.outbox.relay_batch(10, broken, kit.clock.now())
    assert await kit.outbox.backlog() == 3  # nothing marked
    sent: list[OutboxRecord] = []

    async def publish(records: Sequence[OutboxRecord]) -> None:
        sent.extend(records)

    assert await kit.outbox.relay_batch(2, publish, kit.clock.now()) == 2
    assert await kit.outbox.relay_batch(2, publish, kit.clock.now()) == 1
    assert [r.notification_id for r in sent] == [n.id for n in made]  # in order
    assert await kit.outbox.backlog() == 0
    kit.clock.advance(3600)
    assert await kit.outbox.purge_published(kit.clock.now() - timedelta(minutes=1)) == 3
    assert await kit.outbox.purge_published(kit.clock.now()) == 0


async def test_relay_publishes_higher_priorities_first_and_each_priority_in_order(kit: Kit) -> None:
    """A high-priority notification accepted behind a backlog of low ones (a big import, or an outbox that
    grew while the broker was down) is published with the next relay batch, not after the backlog."""
    lows = [await kit.sms(priority=Priority.LOW) for _ in range(3)]
    normal = await kit.sms(priority=Priority.NORMAL)
    high = await kit.sms(priority=Priority.HIGH)
    sent: list[list[UUID]] = []

    async def publish(records: Sequence[OutboxRecord]) -> None:
        sent.append([r.notification_id for r in records if r.kind is OutboxKind.DISPATCH])

    while await kit.outbox.relay_batch(2, publish, kit.clock.now()):
        pass
    assert sent == [[high.id, normal.id], [lows[0].id, lows[1].id], [lows[2].id]]


# --- receipts -----------------------------------------------------------------------------------------------


async def test_a_receipt_is_kept_with_the_notification_its_provider_message_id_names(kit: Kit) -> None:
    n, other = await kit.sms(), await kit.sms()
    for notification, message_id in ((n, "SM-1"), (other, "SM-2")):
        await kit.store.claim(notification.id, claim(), kit.clock.now())
        delivered = DeliveryResult(
            Status.DELIVERED,
            [attempt(AttemptOutcome.DELIVERED)],
            provider="gw",
            provider_message_id=message_id,
        )
        assert await kit.store.record_result(notification.id, claim(), kit.clock.now(), delivered)
    sent = Receipt("gw", "SM-1", ReceiptStatus.IN_TRANSIT, "sent", T0)
    handset = Receipt("gw", "SM-1", ReceiptStatus.UNDELIVERED, "undelivered", T0, error_code="30003")
    assert await kit.receipts.record(sent) == n.id
    assert await kit.receipts.record(handset) == n.id
    assert await kit.receipts.of("t1", n.id) == [sent, handset]  # oldest first
    assert await kit.receipts.of("t1", other.id) == []
    # Another provider's message with the same id, an unknown id, another tenant: nothing.
    assert (
        await kit.receipts.record(Receipt("other-gw", "SM-1", ReceiptStatus.DELIVERED, "delivered", T0))
        is None
    )
    assert (
        await kit.receipts.record(Receipt("gw", "SM-404", ReceiptStatus.DELIVERED, "delivered", T0)) is None
    )
    assert await kit.receipts.of("t2", n.id) is None
    stored = await kit.store.get("t1", n.id)
    assert stored is not None and stored.status is Status.DELIVERED  # a receipt never changes the status


# --- the timeline -------------------------------------------------------------------------------------------


async def test_the_timeline_is_the_creation_then_every_change_and_old_changes_are_purged(kit: Kit) -> None:
    n = await kit.sms()
    assert await kit.store.timeline("t1", n.id) == [StatusChange(Status.PENDING, None, 0, n.created_at)]
    kit.clock.advance(1)
    await kit.store.claim(n.id, claim(), kit.clock.now())
    kit.clock.advance(1)
    retry = DeliveryResult(
        Status.RETRYING,
        [attempt(AttemptOutcome.TRANSIENT)],
        provider="gw",
        error="gw: HTTP 503",
        next_attempt_at=kit.clock.now() + timedelta(seconds=5),
    )
    assert await kit.store.record_result(n.id, claim(), kit.clock.now(), retry)
    kit.clock.advance(1)
    steps = [
        (c.status, c.previous_status, c.attempt, c.error, c.provider)
        for c in await kit.store.timeline("t1", n.id) or []
    ]
    assert steps == [
        (Status.PENDING, None, 0, None, None),
        (Status.PROCESSING, Status.PENDING, 1, None, None),
        (Status.RETRYING, Status.PROCESSING, 1, "gw: HTTP 503", "gw"),
    ]
    assert await kit.store.timeline("t2", n.id) is None  # another tenant's
    # Retention: the oldest change goes first, in bounded chunks; the creation always stays.
    assert await kit.store.purge_status_history(kit.clock.now(), limit=1) == 1
    left = await kit.store.timeline("t1", n.id)
    assert left is not None and [(c.status, c.previous_status) for c in left] == [
        (Status.PROCESSING, None),  # the creation, in the status the first kept change left
        (Status.RETRYING, Status.PROCESSING),
    ]
    assert await kit.store.purge_status_history(kit.clock.now(), limit=100) == 1
    assert await kit.store.purge_status_history(kit.clock.now(), limit=100) == 0
