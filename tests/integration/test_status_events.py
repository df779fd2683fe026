"""Status events against a real PostgreSQL: every transition writes its event in the same transaction, and the
relays publish them in order, one relay at a time."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from notify.adapters.postgres.store import PgNotificationStore, PgOutbox
from notify.app.notifications import NewNotification, NotificationService
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.model import Channel, Status
from notify.domain.outbox import OutboxKind, OutboxRecord
from tests.fakes import FakeClock

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class FixedTraces:
    def for_notification(self, notification_id: object, batch_id: object) -> str | None:
        return TRACEPARENT


def sms(**kw: Any) -> NewNotification:
    fields: dict[str, Any] = {"channel": Channel.SMS, "recipient": "+14155550123", "content": "hi", **kw}
    return NewNotification(**fields)


def transient(attempt: int) -> AttemptRecord:
    return AttemptRecord(
        attempt, "p", T0, T0 + timedelta(milliseconds=5), AttemptOutcome.TRANSIENT, 503, "p: HTTP 503"
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(pool: asyncpg.Pool) -> PgNotificationStore:
    return PgNotificationStore(pool)


@pytest.fixture
def service(store: PgNotificationStore, clock: FakeClock) -> NotificationService:
    return NotificationService(store, clock, traces=FixedTraces())


async def events(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE kind = 'status' ORDER BY id")
    return [r["payload"] for r in rows]


async def test_every_kind_of_transition_writes_one_event_with_the_documented_fields(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    n = await service.create("t1", sms())
    assert await events(pool) == []  # accepting is not a transition

    # pending -> processing -> retrying (a transient failure) -> processing -> delivered
    claim = Claim("w#1", T0 + timedelta(seconds=30))
    assert await store.claim(n.id, claim, clock.now())
    retry_at = T0 + timedelta(seconds=1)
    assert await store.record_result(
        n.id,
        claim,
        clock.now(),
        DeliveryResult(Status.RETRYING, [transient(1)], "p", None, "p: HTTP 503", retry_at),
    )
    clock.advance(2)
    claim = Claim("w#2", clock.now() + timedelta(seconds=30))
    assert await store.claim(n.id, claim, clock.now())
    ok = AttemptRecord(2, "p", clock.now(), clock.now(), AttemptOutcome.DELIVERED)
    assert await store.record_result(
        n.id, claim, clock.now(), DeliveryResult(Status.DELIVERED, [ok], "p", "m1")
    )

    got = await events(pool)
    assert [(e["previous_status"], e["status"], e["attempt"]) for e in got] == [
        ("pending", "processing", 1),
        ("processing", "retrying", 1),
        ("retrying", "processing", 2),
        ("processing", "delivered", 2),
    ]
    assert got[1]["error"] == "p: HTTP 503" and got[3]["error"] is None
    for e in got:
        assert e["notification_id"] == str(n.id) and e["tenant_id"] == "t1" and e["channel"] == "sms"
        assert e["batch_id"] is None
        assert datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert got[-1]["timestamp"] == clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert got[-1]["provider"] == "p"


async def test_cancel_scheduled_release_recovery_expiry_and_replay_each_write_an_event(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    cancelled = await service.create("t1", sms())
    await service.cancel("t1", cancelled.id)
    scheduled = await service.create("t1", sms(scheduled_at=T0 + timedelta(seconds=5)))
    expiring = await service.create("t1", sms(expires_at=T0 + timedelta(seconds=5)))
    stuck = await service.create("t1", sms())
    assert await store.claim(stuck.id, Claim("dead-worker#1", T0 + timedelta(seconds=1)), clock.now())
    clock.advance(10)
    assert await store.release_due_scheduled(clock.now(), 100) == 1
    assert await store.recover_expired_leases(clock.now(), 100) == 1
    assert await store.claim(expiring.id, Claim("w#1", clock.now() + timedelta(seconds=30)), clock.now())
    await store.replay("t1", expiring.id, clock.now())  # expired -> pending

    by_notification: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in await events(pool):
        by_notification[e["notification_id"]].append((e["previous_status"], e["status"]))
    assert dict(by_notification) == {
        str(cancelled.id): [("pending", "cancelled")],
        str(scheduled.id): [("scheduled", "pending")],
        str(stuck.id): [("pending", "processing"), ("processing", "pending")],
        str(expiring.id): [("pending", "expired"), ("expired", "pending")],
    }


async def test_a_rolled_back_transition_leaves_no_event(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    n = await service.create("t1", sms())
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE notifications SET status = 'cancelled' WHERE id = $1", n.id)
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE kind = 'status'") == 1  # inside it
        await tx.rollback()
    assert await events(pool) == []


async def test_relayed_events_carry_the_payload_and_the_notifications_trace_context(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    n = await service.create("t1", sms())
    await service.cancel("t1", n.id)
    published: list[OutboxRecord] = []

    async def publish(records: Sequence[OutboxRecord]) -> None:
        published.extend(records)

    assert await PgOutbox(pool).relay_batch(100, publish, clock.now()) == 2
    dispatch, status = published
    assert dispatch.kind is OutboxKind.DISPATCH and dispatch.trace_context == TRACEPARENT
    assert status.kind is OutboxKind.STATUS and status.trace_context == TRACEPARENT
    assert status.payload is not None and status.payload["status"] == "cancelled"
    assert (await store.get("t1", n.id)).trace_context == TRACEPARENT  # type: ignore[union-attr]


async def test_concurrent_relays_publish_each_notifications_events_in_order(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    """Dispatch records are shared out among relays (SKIP LOCKED), but status events go through one relay at a
    time in id order: whatever the interleaving, a notification's events come out in transition order."""
    ids = [(await service.create("t1", sms(content=f"m{i}"))).id for i in range(40)]
    # Seven transitions each: three claims whose leases run out and are recovered, then a cancel.
    for round_ in range(3):
        for nid in ids:
            assert await store.claim(nid, Claim(f"w#{round_}", clock.now()), clock.now())
        clock.advance(1)
        assert await store.recover_expired_leases(clock.now(), 1000) == len(ids)
    for nid in ids:
        await service.cancel("t1", nid)

    seen: list[tuple[str, int, str]] = []  # (notification, seq, status) in publish order, across relays

    async def publish(records: Sequence[OutboxRecord]) -> None:
        for r in records:
            if r.kind is OutboxKind.STATUS:
                assert r.payload is not None
                seen.append((r.payload["notification_id"], r.id, r.payload["status"]))
        await asyncio.sleep(0.01)  # hold the batch's locks while the other relays try

    relays = [PgOutbox(pool) for _ in range(4)]

    async def drain(outbox: PgOutbox) -> None:
        while await outbox.relay_batch(7, publish, clock.now()):
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert len(seen) == 40 * 7
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)  # globally in id order, no repeats
    per_notification: dict[str, list[str]] = defaultdict(list)
    for nid, _, status in seen:
        per_notification[nid].append(status)
    expected = ["processing", "pending"] * 3 + ["cancelled"]
    assert all(statuses == expected for statuses in per_notification.values())
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_relay_and_backlog_queries_read_the_partial_indexes(pool: asyncpg.Pool) -> None:
    from notify.adapters.postgres import outbox as pg

    queries = [pg._DISPATCH_RELAY, pg._STATUS_RELAY]
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")  # price sequential scans out, as on a big table
        await conn.execute("SET enable_sort = off")  # and sorts: each index must give its query's order
        for sql in queries:
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", 500))
            assert "Seq Scan on outbox" not in plan and "Sort" not in plan, plan
            assert "outbox_unpublished_" in plan, plan
        await conn.execute("RESET enable_sort")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind <> 'status')"
                " + (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind = 'status')"
            )
        )
        assert "Seq Scan" not in plan and plan.count("outbox_unpublished_") == 2, plan


async def test_each_sweep_reads_its_priority_range_of_an_index(pool: asyncpg.Pool) -> None:
    """Released one priority after another (adapters/postgres/sweeps.py): each statement must read only its
    priority's part of an index, not every due (or parked) notification of every priority."""
    from notify.adapters.postgres.sweeps import PgSweeps

    statements: list[str] = []

    class Recording:
        async def execute(self, sql: str, *args: object) -> str:
            statements.append(sql)
            return "INSERT 0 0"

    sweeps = PgSweeps(Recording())  # type: ignore[arg-type]
    now = datetime.now(UTC)
    await sweeps.release_due_scheduled(now, 10)
    await sweeps.release_due_retries(now, 10, now, [])
    await sweeps.requeue_parked(now, 10)
    assert len(statements) == 9  # three sweeps, a statement per priority
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_sort = off")
        for sql, index in zip(statements[::3], ["due_scheduled", "due_retry", "parked"], strict=True):
            args: list[object] = [now, 10, "high"]
            if "retrying" in sql:
                args += [now, [], [], [], []]
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert f"notifications_{index}" in plan and "Sort" not in plan, plan
            conditions = [line for line in plan.splitlines() if "Index Cond" in line]
            assert any("priority = " in line for line in conditions), plan


async def test_retries_and_replays_are_published_in_the_notifications_own_trace(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    """Every publish of a notification (first, due retry, replay) carries the context stored at acceptance,
    so the relay's producer span and everything after it join the one trace."""
    n = await service.create("t1", sms(expires_at=T0 + timedelta(seconds=5)))
    claim = Claim("w#1", T0 + timedelta(seconds=30))
    assert await store.claim(n.id, claim, clock.now())
    retry_at = T0 + timedelta(seconds=1)
    result = DeliveryResult(Status.RETRYING, [transient(1)], "p", None, "p: HTTP 503", retry_at)
    assert await store.record_result(n.id, claim, clock.now(), result)
    clock.advance(2)
    assert await store.release_due_retries(clock.now(), 10, clock.now()) == 1
    clock.advance(10)  # past expires_at: the next claim expires it
    assert await store.claim(n.id, Claim("w#2", clock.now()), clock.now())
    await store.replay("t1", n.id, clock.now())
    published: list[OutboxRecord] = []

    async def publish(records: Sequence[OutboxRecord]) -> None:
        published.extend(records)

    await PgOutbox(pool).relay_batch(100, publish, clock.now())
    dispatches = [r for r in published if r.kind is OutboxKind.DISPATCH]
    assert len(dispatches) == 3  # accepted, retry released, replayed
    assert {r.trace_context for r in published} == {TRACEPARENT}
