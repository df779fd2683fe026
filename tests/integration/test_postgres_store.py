"""PgNotificationStore and PgOutbox against a real PostgreSQL (a fresh migrated database per test)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
from prometheus_client import REGISTRY

from notify.adapters.postgres.store import PgNotificationStore, PgOutbox
from notify.app.notifications import NewNotification, NotificationService
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.errors import Conflict, IllegalTransition, NotFound
from notify.domain.model import Channel, Notification, Priority, Status
from notify.domain.outbox import OutboxRecord
from notify.domain.queries import DeadLetterQuery, ListQuery
from tests.fakes import FakeClock

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def call(
    outcome: AttemptOutcome, attempt: int = 1, provider: str = "p", status: int | None = None
) -> AttemptRecord:
    return AttemptRecord(
        attempt,
        provider,
        T0,
        T0 + timedelta(milliseconds=12),
        outcome,
        status,
        None if outcome is AttemptOutcome.DELIVERED else f"HTTP {status}",
    )


def delivered(message_id: str) -> DeliveryResult:
    return DeliveryResult(
        Status.DELIVERED, [call(AttemptOutcome.DELIVERED)], provider="p", provider_message_id=message_id
    )


def sms(**kw: object) -> NewNotification:
    fields: dict[str, object] = {"channel": Channel.SMS, "recipient": "+14155550123", "content": "hi"}
    fields.update(kw)
    return NewNotification(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(pool: asyncpg.Pool) -> PgNotificationStore:
    return PgNotificationStore(pool)


@pytest.fixture
def service(store: PgNotificationStore, clock: FakeClock) -> NotificationService:
    return NotificationService(store, clock)


async def outbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Dispatch and dead-letter records (status events have their own tests)."""
    return await pool.fetch(  # type: ignore[no-any-return]
        "SELECT * FROM outbox WHERE kind <> 'status' ORDER BY id"
    )


async def test_create_writes_notification_and_outbox_in_one_transaction(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    n = await service.create("t1", sms(metadata={"order": 42}), correlation_id="corr-1")
    assert await store.get("t1", n.id) == n
    rows = await outbox_rows(pool)
    assert [(r["notification_id"], r["priority"], r["correlation_id"]) for r in rows] == [
        (n.id, "normal", "corr-1")
    ]


async def test_a_failed_insert_leaves_no_outbox_record(
    service: NotificationService, pool: asyncpg.Pool
) -> None:
    first = await service.create("t1", sms(idempotency_key="k1"))
    assert (await service.accept("t1", sms(idempotency_key="k1"))).notification.id == first.id  # replayed
    with pytest.raises(Conflict):
        await service.create("t1", sms(idempotency_key="k1", content="another"))
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 1
    assert len(await outbox_rows(pool)) == 1
    other_tenant = await service.create("t2", sms(idempotency_key="k1"))  # keys are per tenant
    assert other_tenant.idempotency_key == "k1"


async def test_scheduled_notifications_get_no_outbox_record_until_released(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    n = await service.create("t1", sms(scheduled_at=T0 + timedelta(seconds=30)))
    assert n.status is Status.SCHEDULED
    assert await outbox_rows(pool) == []
    assert await store.release_due_scheduled(T0 + timedelta(seconds=29), 100) == 0
    assert await store.release_due_scheduled(T0 + timedelta(seconds=30), 100) == 1
    assert (await store.get("t1", n.id)).status is Status.PENDING  # type: ignore[union-attr]
    assert [r["notification_id"] for r in await outbox_rows(pool)] == [n.id]


async def test_two_schedulers_never_release_one_notification_twice(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    for _ in range(200):
        await service.create("t1", sms(scheduled_at=T0 + timedelta(seconds=1)))
    due = T0 + timedelta(seconds=5)
    counts = await asyncio.gather(*(store.release_due_scheduled(due, 40) for _ in range(8)))
    while sum(counts) < 200:
        more = await asyncio.gather(*(store.release_due_scheduled(due, 40) for _ in range(8)))
        assert sum(more) > 0
        counts += more
    assert sum(counts) == 200
    rows = await outbox_rows(pool)
    assert len(rows) == 200 == len({r["notification_id"] for r in rows})


class TestList:
    async def test_filters_and_cursor_pagination(
        self, service: NotificationService, store: PgNotificationStore, clock: FakeClock
    ) -> None:
        created: list[Notification] = []
        for i in range(25):
            clock.advance(1)
            channel = Channel.EMAIL if i % 5 == 0 else Channel.SMS
            recipient = f"user{i}@example.com" if channel is Channel.EMAIL else "+14155550123"
            priority = Priority.HIGH if i % 2 else Priority.LOW
            created.append(
                await service.create("t1", sms(channel=channel, recipient=recipient, priority=priority))
            )
        await service.create("t2", sms())  # another tenant's: never listed

        seen: list[Notification] = []
        after = None
        while True:
            page = await store.search(ListQuery("t1", page_size=10, after_id=after))
            seen += page.items
            after = page.next_after_id
            if after is None:
                break
        assert [n.id for n in seen] == [n.id for n in reversed(created)]

        emails = await store.search(ListQuery("t1", channel=Channel.EMAIL))
        assert {n.id for n in emails.items} == {n.id for n in created if n.channel is Channel.EMAIL}
        high = await store.search(ListQuery("t1", priority=Priority.HIGH, page_size=100))
        assert len(high.items) == 12
        by_recipient = await store.search(ListQuery("t1", recipient="user10@example.com"))
        assert [n.id for n in by_recipient.items] == [created[10].id]
        window = await store.search(
            ListQuery("t1", date_from=created[3].created_at, date_to=created[6].created_at, page_size=100)
        )
        assert [n.id for n in window.items] == [n.id for n in reversed(created[3:7])]
        await service.cancel("t1", created[0].id)
        cancelled = await store.search(ListQuery("t1", status=Status.CANCELLED))
        assert [n.id for n in cancelled.items] == [created[0].id]

    async def test_every_list_query_is_served_by_an_index(
        self, service: NotificationService, pool: asyncpg.Pool
    ) -> None:
        for _ in range(50):
            await service.create("t1", sms())
        queries = [
            ListQuery("t1"),
            ListQuery("t1", status=Status.PENDING),
            ListQuery("t1", channel=Channel.SMS),
            ListQuery("t1", priority=Priority.HIGH),
            ListQuery("t1", batch_id=uuid4()),
            ListQuery("t1", recipient="+14155550123"),
            ListQuery("t1", date_from=T0, date_to=T0 + timedelta(days=1)),
        ]
        async with pool.acquire() as conn:
            # With sequential scans priced out, the planner picks a seq scan only where no index can serve.
            await conn.execute("SET enable_seqscan = off")
            explaining = _ExplainingPool(conn)
            for q in queries:
                await PgNotificationStore(explaining).search(q)  # type: ignore[arg-type]
        for q, plan in zip(queries, explaining.plans, strict=True):
            assert "Seq Scan" not in plan, (q, plan)


class _ExplainingPool:
    """Stands in for the pool: records the plan of each read query instead of running it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.plans: list[str] = []

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        rows = await self._conn.fetch("EXPLAIN " + sql, *args)
        self.plans.append("\n".join(r[0] for r in rows))
        return []


class TestTransitions:
    async def test_cancel_rules(
        self, service: NotificationService, store: PgNotificationStore, clock: FakeClock
    ) -> None:
        n = await service.create("t1", sms())
        with pytest.raises(NotFound):
            await service.cancel("t2", n.id)
        with pytest.raises(NotFound):
            await service.cancel("t1", uuid4())
        claim = Claim("w", T0 + timedelta(seconds=30))
        assert await store.claim(n.id, claim, clock.now()) is not None
        with pytest.raises(IllegalTransition, match="'processing' cannot become 'cancelled'"):
            await service.cancel("t1", n.id)

    async def test_claim_is_exclusive_under_concurrency(
        self, service: NotificationService, store: PgNotificationStore, clock: FakeClock
    ) -> None:
        n = await service.create("t1", sms())
        claims = [Claim(f"w{i}", T0 + timedelta(seconds=30)) for i in range(20)]
        results = await asyncio.gather(*(store.claim(n.id, c, clock.now()) for c in claims))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].status is Status.PROCESSING
        assert winners[0].attempts == 0  # counted when the round's result is stored

    async def test_cancel_racing_claim_never_lets_both_win(
        self, service: NotificationService, store: PgNotificationStore, clock: FakeClock
    ) -> None:
        for _ in range(100):
            n = await service.create("t1", sms())

            async def cancel(nid: object = n.id) -> bool:
                try:
                    await service.cancel("t1", nid)  # type: ignore[arg-type]
                    return True
                except IllegalTransition:
                    return False

            claimed, cancelled = await asyncio.gather(
                store.claim(n.id, Claim("w", T0 + timedelta(seconds=30)), clock.now()), cancel()
            )
            assert (claimed is not None) != cancelled
            final = await store.get("t1", n.id)
            assert final is not None
            assert final.status is (Status.CANCELLED if cancelled else Status.PROCESSING)

    async def test_outcome_needs_the_current_claim(
        self, service: NotificationService, store: PgNotificationStore, clock: FakeClock
    ) -> None:
        n = await service.create("t1", sms())
        mine = Claim("w1#1", T0 + timedelta(seconds=30))
        assert await store.claim(n.id, mine, clock.now())
        assert not await store.record_result(
            n.id, Claim("w2#1", mine.lease_until), clock.now(), delivered("m")
        )
        assert await store.record_result(n.id, mine, clock.now(), delivered("m-1"))
        late = DeliveryResult(Status.FAILED, [], error="late")
        assert not await store.record_result(n.id, mine, clock.now(), late)  # delivered stays delivered
        final = await store.get("t1", n.id)
        assert final is not None
        assert (final.status, final.provider_message_id, final.sent_at) == (Status.DELIVERED, "m-1", T0)

    async def test_expired_notification_is_never_claimed_for_sending(
        self, service: NotificationService, store: PgNotificationStore
    ) -> None:
        n = await service.create("t1", sms(expires_at=T0 + timedelta(seconds=10)))
        result = await store.claim(n.id, Claim("w", T0 + timedelta(minutes=1)), T0 + timedelta(seconds=11))
        assert result is not None
        assert result.status is Status.EXPIRED and result.attempts == 0

    async def test_dead_worker_leases_are_recovered_once(
        self, service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
    ) -> None:
        n = await service.create("t1", sms())
        assert await store.claim(n.id, Claim("dead", T0 + timedelta(seconds=30)), T0)
        assert await store.recover_expired_leases(T0 + timedelta(seconds=29), 10) == 0
        counts = await asyncio.gather(
            *(store.recover_expired_leases(T0 + timedelta(seconds=31), 10) for _ in range(4))
        )
        assert sum(counts) == 1
        recovered = await store.get("t1", n.id)
        assert recovered is not None and recovered.status is Status.PENDING
        assert len(await outbox_rows(pool)) == 2  # the original dispatch and the recovery
        assert not await store.record_result(
            n.id, Claim("dead", T0 + timedelta(seconds=30)), T0, delivered("m")
        )


async def test_check_constraints_guard_the_table(pool: asyncpg.Pool) -> None:
    insert = """INSERT INTO notifications (id, tenant_id, channel, recipient, content, priority, status,
                max_retries, created_at, updated_at)
                VALUES ($1, 't', $2, 'r', $3, 'normal', $4, 3, now(), now())"""
    for channel, content, status in [
        ("fax", "x", "pending"),
        ("sms", "x" * 1601, "pending"),
        ("sms", "x", "sent"),
        ("sms", "x", "processing"),
    ]:
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(insert, uuid4(), channel, content, status)


async def test_outbox_relay_marks_only_what_was_published(
    service: NotificationService, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    outbox = PgOutbox(pool)
    for _ in range(5):
        await service.create("t1", sms())
    sent: list[OutboxRecord] = []

    async def failing(records: object) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await outbox.relay_batch(10, failing, clock.now())
    assert await outbox.backlog() == 5

    async def ok(records: list[OutboxRecord]) -> None:
        sent.extend(records)

    assert await outbox.relay_batch(3, ok, clock.now()) == 3  # type: ignore[arg-type]
    assert await outbox.backlog() == 2
    assert await outbox.relay_batch(10, ok, clock.now()) == 2  # type: ignore[arg-type]
    assert len({r.id for r in sent}) == 5
    assert await outbox.purge_published(clock.now() + timedelta(seconds=1)) == 5


class TestDeliveryEngine:
    async def test_retry_is_stored_with_its_ledger_and_released_when_due(
        self, service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
    ) -> None:
        n = await service.create("t1", sms())
        claim = Claim("w#1", T0 + timedelta(seconds=30))
        assert await store.claim(n.id, claim, T0)
        due = T0 + timedelta(seconds=3)
        result = DeliveryResult(
            Status.RETRYING,
            [call(AttemptOutcome.TRANSIENT, status=503)],
            provider="p",
            error="HTTP 503",
            next_attempt_at=due,
        )
        assert await store.record_result(n.id, claim, T0, result)
        waiting = await store.get("t1", n.id)
        assert waiting is not None
        assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == (Status.RETRYING, 1, due)
        assert (
            await store.claim(n.id, Claim("w#2", T0 + timedelta(minutes=1)), T0 + timedelta(seconds=1))
            is None
        )
        assert await store.release_due_retries(T0 + timedelta(seconds=2), 10, T0) == 0
        assert await store.release_due_retries(due, 10, T0) == 1
        assert await store.release_due_retries(due, 10, T0) == 0  # released once
        assert len(await outbox_rows(pool)) == 2
        assert await store.claim(n.id, Claim("w#3", due + timedelta(seconds=30)), due)
        ledger = await store.attempts("t1", n.id)
        assert ledger is not None
        assert [(a.attempt, a.outcome, a.http_status) for a in ledger] == [(1, AttemptOutcome.TRANSIENT, 503)]
        assert await store.attempts("t2", n.id) is None

    async def test_failure_dead_letters_and_replay_gives_fresh_retries(
        self, service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
    ) -> None:
        failed_ids = []
        for i in range(3):
            n = await service.create("t1", sms(channel=Channel.EMAIL, recipient=f"u{i}@example.com"))
            claim = Claim(f"w#{i}", T0 + timedelta(seconds=30))
            assert await store.claim(n.id, claim, T0)
            error = "HTTP 400: unknown mailbox" if i < 2 else "retries exhausted: HTTP 503"
            result = DeliveryResult(
                Status.FAILED,
                [call(AttemptOutcome.PERMANENT, status=400)],
                provider="mailer" if i < 2 else "backup",
                error=error,
            )
            assert await store.record_result(n.id, claim, T0 + timedelta(seconds=i), result)
            failed_ids.append(n.id)
        kinds = [r["kind"] for r in await outbox_rows(pool)]
        assert kinds.count("dead_letter") == 3
        page = await store.dead_letters(DeadLetterQuery("t1", error_contains="MAILBOX"))
        assert {n.id for n in page.items} == set(failed_ids[:2])
        assert len((await store.dead_letters(DeadLetterQuery("t1", provider="backup"))).items) == 1
        window = DeadLetterQuery("t1", date_from=T0 + timedelta(seconds=1), date_to=T0 + timedelta(seconds=2))
        assert len((await store.dead_letters(window)).items) == 2
        assert await store.count_dead_letters(DeadLetterQuery("t1", provider="mailer")) == 2
        assert await store.replay_dead_letters(DeadLetterQuery("t1", provider="mailer"), T0, limit=10) == 2
        replayed = await store.get("t1", failed_ids[0])
        assert replayed is not None
        assert (replayed.status, replayed.attempt_base, replayed.attempts) == (Status.PENDING, 1, 1)
        assert len(await store.attempts("t1", failed_ids[0]) or []) == 1  # history kept
        single = await store.replay("t1", failed_ids[2], T0)
        assert single.status is Status.PENDING and single.error_message is None
        with pytest.raises(IllegalTransition):
            await store.replay("t1", failed_ids[2], T0)
        with pytest.raises(NotFound):
            await store.replay("t2", failed_ids[2], T0)


async def test_fifty_concurrent_duplicates_make_one_notification(
    service: NotificationService, pool: asyncpg.Pool
) -> None:
    results = await asyncio.gather(*(service.accept("t1", sms(idempotency_key="same")) for _ in range(50)))
    assert len({r.notification.id for r in results}) == 1
    assert sum(1 for r in results if not r.replayed) == 1
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 1
    assert len(await outbox_rows(pool)) == 1


async def test_concurrent_singles_share_statements_and_a_bad_one_fails_alone(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    # Accepted notifications built by the service; one then breaks a database constraint (a trace context
    # longer than the column allows) that validation cannot see, to prove it takes only itself down.
    model = await service.create("t1", sms())
    await pool.execute("DELETE FROM outbox; DELETE FROM notifications")
    good = [replace(model, id=uuid4(), content=f"good {i}") for i in range(30)]
    bad = replace(model, id=uuid4(), trace_context="x" * 600)
    everyone = [*good[:15], bad, *good[15:]]
    before = {name: accept_metric(name) for name in ("statements", "items", "isolated")}
    outcomes = await asyncio.gather(*(store.create([n]) for n in everyone), return_exceptions=True)
    assert isinstance(outcomes[15], asyncpg.CheckViolationError)
    assert [o for i, o in enumerate(outcomes) if i != 15] == [None] * 30
    stored = {r["id"] for r in await pool.fetch("SELECT id FROM notifications")}
    assert stored == {n.id for n in good}
    assert len(await outbox_rows(pool)) == 30
    written = {name: accept_metric(name) - before[name] for name in before}
    assert written["statements"] < written["items"]  # they were grouped (each item counts once per try)
    assert written["isolated"] >= 1


def accept_metric(name: str) -> float:
    return REGISTRY.get_sample_value(f"notify_group_{name}_total", {"group": "accept"}) or 0.0


async def test_batch_of_1000_is_one_transaction_with_counts(
    service: NotificationService, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    items = [sms(content=f"m{i}", idempotency_key=f"b-{i}") for i in range(1000)]
    accepted = await service.accept_batch("t1", items, idempotency_key="batch-1")
    assert len(accepted.notifications) == 1000
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE batch_id = $1", accepted.batch.id)
        == 1000
    )
    assert len(await outbox_rows(pool)) == 1000
    assert (await store.batch_counts(accepted.batch.id)) == {Status.PENDING: 1000}
    replay = await service.accept_batch("t1", items, idempotency_key="batch-1")
    assert replay.replayed
    assert [n.id for n in replay.notifications] == [n.id for n in accepted.notifications]
    # one key reused from that batch: the whole new batch is refused, nothing is stored
    with pytest.raises(Conflict) as info:
        await service.accept_batch("t1", [sms(idempotency_key="fresh"), sms(idempotency_key="b-7")])
    assert [d.field for d in info.value.details] == ["notifications[1].idempotency_key"]
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 1000
    assert await pool.fetchval("SELECT count(*) FROM batches") == 1
