"""Delivery statistics on a real PostgreSQL: the trigger of migration 0006 counts outcomes in the transaction
of each status change, PgDeliveryStats reads them without scanning notifications, and GET /api/v1/metrics
serves them through the real middleware (API keys, tenants, query validation)."""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_right
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from notify.adapters.http.app import create_app
from notify.adapters.http.auth import KeyRateLimiter
from notify.adapters.http.responses import MetricsOut
from notify.adapters.http.state import SERVICES, STATS, ApiServices
from notify.adapters.postgres.keys import PgApiKeyStore
from notify.adapters.postgres.stats import PgDeliveryStats
from notify.adapters.postgres.store import PgNotificationStore
from notify.app.auth import Authenticator
from notify.app.notifications import NotificationService
from notify.app.operations import Operations
from notify.app.stats import StatsService
from notify.devtools.devstack import create_api_key
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.ids import uuid7_at
from notify.domain.model import Channel, Notification, Priority, Status
from notify.domain.stats import LATENCY_BOUNDS_MS
from notify.ports.stats import ChannelFigures
from tests.fakes import FakeClock

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # a whole minute
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
RECIPIENTS = {Channel.SMS: "+14155550123", Channel.EMAIL: "ada@example.com", Channel.PUSH: "device-token"}


def histogram_of(latencies_ms: list[float]) -> tuple[int, ...]:
    hist = [0] * BUCKETS
    for latency in latencies_ms:
        hist[bisect_right(LATENCY_BOUNDS_MS, max(0.0, latency))] += 1
    return tuple(hist)


def a_notification(
    tenant: str = "t1",
    channel: Channel = Channel.SMS,
    created_at: datetime = T0,
    scheduled_at: datetime | None = None,
) -> Notification:
    return Notification(
        id=uuid7_at(created_at),
        tenant_id=tenant,
        channel=channel,
        recipient=RECIPIENTS[channel],
        content="hi",
        priority=Priority.NORMAL,
        status=Status.SCHEDULED if scheduled_at is not None else Status.PENDING,
        created_at=created_at,
        updated_at=created_at,
        scheduled_at=scheduled_at,
        max_retries=3,
    )


class Worker:
    """Moves notifications through the store's real claim and record_result, as the Deliverer does."""

    def __init__(self, store: PgNotificationStore, name: str = "w") -> None:
        self.store = store
        self.claim = Claim(name, T0 + timedelta(days=365))

    async def create(self, *notifications: Notification) -> list[Notification]:
        await self.store.create(list(notifications))
        return list(notifications)

    async def finish(self, n: Notification, at: datetime, status: Status = Status.DELIVERED) -> None:
        assert await self.store.claim(n.id, self.claim, at) is not None
        outcome = {
            Status.DELIVERED: AttemptOutcome.DELIVERED,
            Status.FAILED: AttemptOutcome.PERMANENT,
            Status.RETRYING: AttemptOutcome.TRANSIENT,
        }[status]
        call = AttemptRecord(1, "p", at, at, outcome, 200 if status is Status.DELIVERED else 500, None)
        result = DeliveryResult(
            status,
            [call],
            provider="p",
            provider_message_id="m" if status is Status.DELIVERED else None,
            error=None if status is Status.DELIVERED else "HTTP 500",
            next_attempt_at=at + timedelta(seconds=30) if status is Status.RETRYING else None,
        )
        assert await self.store.record_result(n.id, self.claim, at, result)

    async def deliver_with_latency(self, latency_ms: float, sent_at: datetime, **kw: Any) -> Notification:
        (n,) = await self.create(
            a_notification(created_at=sent_at - timedelta(milliseconds=latency_ms), **kw)
        )
        await self.finish(n, sent_at)
        return n


@pytest.fixture
def store(pool: asyncpg.Pool) -> PgNotificationStore:
    return PgNotificationStore(pool)


@pytest.fixture
def worker(store: PgNotificationStore) -> Worker:
    return Worker(store)


@pytest.fixture
def stats(pool: asyncpg.Pool) -> PgDeliveryStats:
    return PgDeliveryStats(pool)


async def test_the_sql_bounds_are_the_domain_bounds(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("SELECT delivery_latency_bounds_ms()") == list(LATENCY_BOUNDS_MS)


async def test_counts_and_the_latency_histogram_are_exact(worker: Worker, stats: PgDeliveryStats) -> None:
    sent_at = T0 + timedelta(seconds=30)
    # Bucket edges on both sides (a bound belongs to the bucket above it), the overflow bucket, and a provider
    # clock ahead of the API's (a negative latency counts as 0).
    latencies = [0, 9.999, 10, 24.999, 25, 120.5, 3_599_999.999, 3_600_000, 5 * 3_600_000, -50.0]
    for latency in latencies:
        await worker.deliver_with_latency(latency, sent_at)
    for _ in range(3):
        (n,) = await worker.create(a_notification(created_at=T0))
        await worker.finish(n, sent_at, Status.FAILED)

    sms = (await stats.figures("t1", T0))[Channel.SMS]
    assert (sms.sent, sms.failed, sms.queue_depth) == (len(latencies), 3, 0)
    assert sms.latency_sum_ms == pytest.approx(sum(max(0.0, x) for x in latencies), abs=1e-6)
    assert sms.latency_hist == histogram_of(latencies)
    assert sms.latency_hist[0] == 3 and sms.latency_hist[-1] == 2  # 0, 9.999, -50 | 1 h, 5 h
    empty = ChannelFigures(0, 0, 0.0, (0,) * BUCKETS, 0)
    figures = await stats.figures("t1", T0)
    assert figures[Channel.EMAIL] == figures[Channel.PUSH] == empty


async def test_latency_runs_from_the_scheduled_time(
    worker: Worker, store: PgNotificationStore, stats: PgDeliveryStats
) -> None:
    due = T0 + timedelta(minutes=10)
    (n,) = await worker.create(a_notification(created_at=T0, scheduled_at=due))
    assert await store.release_due_scheduled(due, 10) == 1
    await worker.finish(n, due + timedelta(milliseconds=300))
    sms = (await stats.figures("t1", T0))[Channel.SMS]
    assert (sms.sent, sms.latency_sum_ms) == (1, pytest.approx(300))
    assert sms.latency_hist == histogram_of([300])


async def test_tenants_and_channels_are_separated(worker: Worker, stats: PgDeliveryStats) -> None:
    at = T0 + timedelta(seconds=1)
    for tenant, channel, status in [
        ("t1", Channel.SMS, Status.DELIVERED),
        ("t1", Channel.EMAIL, Status.DELIVERED),
        ("t1", Channel.EMAIL, Status.FAILED),
        ("t2", Channel.SMS, Status.FAILED),
        ("t2", Channel.PUSH, Status.DELIVERED),
    ]:
        (n,) = await worker.create(a_notification(tenant, channel, created_at=T0))
        await worker.finish(n, at, status)
    t1 = await stats.figures("t1", T0)
    t2 = await stats.figures("t2", T0)
    assert {c: (f.sent, f.failed) for c, f in t1.items()} == {
        Channel.SMS: (1, 0),
        Channel.EMAIL: (1, 1),
        Channel.PUSH: (0, 0),
    }
    assert {c: (f.sent, f.failed) for c, f in t2.items()} == {
        Channel.SMS: (0, 1),
        Channel.EMAIL: (0, 0),
        Channel.PUSH: (1, 0),
    }
    assert {c: (f.sent, f.failed) for c, f in (await stats.figures("nobody", T0)).items()} == {
        c: (0, 0) for c in Channel
    }


async def test_concurrent_workers_spread_over_shards_and_every_outcome_is_counted_once(
    store: PgNotificationStore, stats: PgDeliveryStats, pool: asyncpg.Pool
) -> None:
    notifications = [a_notification(created_at=T0 + timedelta(milliseconds=i)) for i in range(80)]
    await store.create(notifications)
    at = T0 + timedelta(seconds=5)
    workers = [Worker(store, f"w{i}") for i in range(8)]

    async def run(i: int, n: Notification) -> None:
        await workers[i % 8].finish(n, at, Status.DELIVERED if i % 5 else Status.FAILED)

    await asyncio.gather(*(run(i, n) for i, n in enumerate(notifications)))

    rows = await pool.fetch("SELECT shard, sent, failed FROM delivery_stats WHERE tenant_id = 't1'")
    assert len(rows) > 1  # spread over shards: 80 random last bytes all in one shard would be a miracle
    expected_by_shard = Counter(n.id.bytes[15] % 4 for n in notifications)
    assert {r["shard"]: r["sent"] + r["failed"] for r in rows} == dict(expected_by_shard)
    sms = (await stats.figures("t1", T0))[Channel.SMS]
    assert (sms.sent, sms.failed) == (64, 16)
    assert sum(sms.latency_hist) == 64


async def test_the_window_starts_at_a_whole_minute(worker: Worker, stats: PgDeliveryStats) -> None:
    since = T0 - timedelta(minutes=60)
    for sent_at in [
        since - timedelta(minutes=30),
        since - timedelta(microseconds=1),  # the minute before the window
        since,  # the window's first minute
        since + timedelta(seconds=59, microseconds=999_999),
        T0 + timedelta(seconds=10),
    ]:
        await worker.deliver_with_latency(100, sent_at)
    assert (await stats.figures("t1", since))[Channel.SMS].sent == 3
    assert (await stats.figures("t1", since + timedelta(minutes=1)))[Channel.SMS].sent == 1
    assert (await stats.figures("t1", since - timedelta(hours=2)))[Channel.SMS].sent == 5

    clock = FakeClock(T0 + timedelta(seconds=20))  # the service rounds now - window down to the minute
    metrics = await StatsService(stats, clock).metrics("t1", 3600)
    assert metrics.since == since
    assert metrics.channels[Channel.SMS].sent == 3
    assert metrics.channels[Channel.SMS].avg_latency_ms == pytest.approx(100)
    assert metrics.channels[Channel.SMS].p95_latency_ms == pytest.approx(100 + 50 * 0.95)  # in [100, 150)


async def test_only_changes_to_delivered_or_failed_count(
    worker: Worker, store: PgNotificationStore, stats: PgDeliveryStats, pool: asyncpg.Pool
) -> None:
    at = T0 + timedelta(seconds=1)
    retrying, cancelled, replayed = await worker.create(*(a_notification(created_at=T0) for _ in range(3)))
    await worker.finish(retrying, at, Status.RETRYING)
    await store.cancel("t1", cancelled.id, at)
    # A lease recovered (processing -> pending) counts nothing either.
    (recovered,) = await worker.create(a_notification(created_at=T0))
    assert await store.claim(recovered.id, Claim("dead", at), at) is not None
    assert await store.recover_expired_leases(at + timedelta(seconds=1), 10) == 1
    queued = 3  # retrying, recovered, and replayed (still pending)
    assert (await stats.figures("t1", T0))[Channel.SMS] == ChannelFigures(0, 0, 0.0, (0,) * BUCKETS, queued)

    # Failed, replayed, then delivered: one failure and one delivery.
    await worker.finish(replayed, at, Status.FAILED)
    await store.replay("t1", replayed.id, at)
    await worker.finish(replayed, at + timedelta(milliseconds=20))
    # Updates that leave the status as it is do not count again.
    await pool.execute(
        "UPDATE notifications SET status = status, updated_at = updated_at WHERE tenant_id = 't1'"
    )
    sms = (await stats.figures("t1", T0))[Channel.SMS]
    assert (sms.sent, sms.failed) == (1, 1)


async def test_a_rolled_back_change_counts_nothing(
    worker: Worker, stats: PgDeliveryStats, pool: asyncpg.Pool
) -> None:
    (n,) = await worker.create(a_notification(created_at=T0))
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "UPDATE notifications SET status = 'failed', failed_at = $2 WHERE id = $1", n.id, T0
        )
        assert await conn.fetchval("SELECT sum(failed) FROM delivery_stats") == 1  # in the same transaction
        await tx.rollback()
    assert (await stats.figures("t1", T0))[Channel.SMS].failed == 0


async def test_queue_depth_counts_pending_processing_and_retrying_only(
    worker: Worker, store: PgNotificationStore, stats: PgDeliveryStats
) -> None:
    at = T0 + timedelta(seconds=1)
    pending = [a_notification(created_at=T0) for _ in range(3)] + [a_notification(channel=Channel.PUSH)]
    processing, retrying, delivered, failed, cancelled = (a_notification(created_at=T0) for _ in range(5))
    emails = [a_notification(channel=Channel.EMAIL) for _ in range(2)]
    scheduled = a_notification(scheduled_at=T0 + timedelta(hours=1))
    other_tenant = a_notification("t2")
    await worker.create(
        *pending, processing, retrying, delivered, failed, cancelled, *emails, scheduled, other_tenant
    )
    assert await store.claim(processing.id, worker.claim, at) is not None
    await worker.finish(retrying, at, Status.RETRYING)
    await worker.finish(delivered, at)
    await worker.finish(failed, at, Status.FAILED)
    await store.cancel("t1", cancelled.id, at)
    await worker.finish(emails[0], at, Status.RETRYING)

    figures = await stats.figures("t1", T0)
    assert {c: f.queue_depth for c, f in figures.items()} == {
        Channel.SMS: 3 + 1 + 1,  # pending, processing, retrying
        Channel.EMAIL: 2,  # retrying, pending
        Channel.PUSH: 1,
    }
    assert (await stats.figures("t2", T0))[Channel.SMS].queue_depth == 1


async def test_purge_drops_minutes_before_the_cutoff(
    worker: Worker, stats: PgDeliveryStats, pool: asyncpg.Pool
) -> None:
    for minutes_ago in (60 * 24 * 40, 60 * 24 * 36, 5):
        await worker.deliver_with_latency(50, T0 - timedelta(minutes=minutes_ago))
    clock = FakeClock(T0)
    service = StatsService(stats, clock, retention=timedelta(days=35))
    assert await service.purge_expired() == 2
    assert await pool.fetchval("SELECT count(*) FROM delivery_stats") == 1
    assert await service.purge_expired() == 0


# --- the plan: counters through the primary key, the queue through notifications_tenant_status -------------


class _ExplainingPool:
    """Stands in for the pool: records the JSON plan of each read query instead of running it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.plans: list[dict[str, Any]] = []

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        raw = await self._conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        self.plans.append((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
        return []


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def _scans_of(plan: dict[str, Any], relation: str) -> list[tuple[str, str | None]]:
    """(node type, index) of every node reading ``relation``; a bitmap heap scan takes its index from the
    bitmap index scan under it."""
    scans = []
    for node in _nodes(plan):
        if node.get("Relation Name") != relation:
            continue
        index = node.get("Index Name")
        if node["Node Type"] == "Bitmap Heap Scan":
            index = next(n.get("Index Name") for n in _nodes(node) if n["Node Type"] == "Bitmap Index Scan")
        scans.append((node["Node Type"], index))
    return scans


@pytest.mark.parametrize("seqscan", ["off", "on"])
async def test_no_read_scans_notifications(
    seqscan: str, store: PgNotificationStore, pool: asyncpg.Pool
) -> None:
    # Many tenants, mostly delivered: what a real table looks like. A per-minute counter table holds the rest.
    await store.create(
        [
            a_notification(f"t{i % 50}", list(Channel)[i % 3], T0 + timedelta(milliseconds=i))
            for i in range(3000)
        ]
    )
    await pool.execute(
        "UPDATE notifications SET status = 'delivered', sent_at = created_at + interval '80 ms' "
        "WHERE tenant_id <> 't1' OR id::text < '8'"
    )
    await pool.execute("ANALYZE notifications; ANALYZE delivery_stats")
    async with pool.acquire() as conn:
        # With sequential scans priced out, the planner picks one only where no index can serve; with them
        # allowed, it must still prefer the indexes on a table of this shape.
        await conn.execute(f"SET enable_seqscan = {seqscan}")
        explaining = _ExplainingPool(conn)
        await PgDeliveryStats(explaining).figures("t1", T0 - timedelta(hours=1))  # type: ignore[arg-type]
    (plan,) = explaining.plans
    notification_scans = _scans_of(plan, "notifications")
    assert notification_scans, plan  # the queue depth is read, once
    assert len(notification_scans) == 1, notification_scans
    node_type, index = notification_scans[0]
    assert node_type in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), plan
    assert index == "notifications_tenant_status", plan
    for node_type, index in _scans_of(plan, "delivery_stats"):
        assert node_type != "Seq Scan" and index == "delivery_stats_pkey", plan


# --- GET /api/v1/metrics through the real middleware ------------------------------------------------------


@pytest.fixture
async def client(
    pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    clock = FakeClock(T0 + timedelta(seconds=20))
    store = PgNotificationStore(pool)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES] = ApiServices(
            NotificationService(store, clock),
            Operations(store, clock),
            Authenticator(PgApiKeyStore(pool), clock),
            KeyRateLimiter(10_000),
        )
        app[STATS] = StatsService(PgDeliveryStats(pool), clock)
        yield

    async with TestClient(TestServer(create_app(1024 * 1024, resources))) as c:
        yield c


async def _key(database_url: str, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_api_key(database_url, name=tenant, tenant_id=tenant)}"}


async def test_metrics_route_answers_the_callers_tenant(
    client: TestClient[web.Request, web.Application], worker: Worker, database_url: str
) -> None:
    t1, t2 = await _key(database_url, "t1"), await _key(database_url, "t2")
    for latency in (100, 120, 140, 2000):
        await worker.deliver_with_latency(latency, T0 + timedelta(seconds=5))
    (failed,) = await worker.create(a_notification(created_at=T0))
    await worker.finish(failed, T0 + timedelta(seconds=5), Status.FAILED)
    await worker.create(a_notification(), a_notification(channel=Channel.EMAIL))  # queued

    async with client.get("/api/v1/metrics", headers=t1) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    MetricsOut.model_validate(body)  # the documented shape, nothing more
    assert body["window_s"] == 3600
    assert body["since"] == "2026-03-01T08:00:00Z"
    assert body["channels"]["sms"] == {
        "sent": 4,
        "failed": 1,
        "avg_latency_ms": 590.0,
        "p95_latency_ms": 1500 + 1000 * (0.95 * 4 - 3),  # the 4th value is in [1500, 2500)
        "success_rate": 0.8,
        "queue_depth": 1,
    }
    assert body["channels"]["email"] == {
        "sent": 0,
        "failed": 0,
        "avg_latency_ms": None,
        "p95_latency_ms": None,
        "success_rate": None,
        "queue_depth": 1,
    }
    assert body["channels"]["push"]["queue_depth"] == 0

    async with client.get("/api/v1/metrics", headers=t2, params={"window_s": "60"}) as r:
        assert r.status == 200
        other = await r.json()
    assert other["since"] == "2026-03-01T08:59:00Z"
    assert all(c["sent"] == c["failed"] == c["queue_depth"] == 0 for c in other["channels"].values())


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("window_s=59", "window_s", "greater_than_equal"),
        ("window_s=604801", "window_s", "less_than_equal"),
        ("window_s=1h", "window_s", "int_parsing"),
        ("window_s=", "window_s", "int_parsing"),
        ("window=60", "window", "extra_forbidden"),
        ("window_s=60&window_s=120", "window_s", "repeated"),
    ],
)
async def test_metrics_route_refuses_bad_query_parameters(
    client: TestClient[web.Request, web.Application], database_url: str, query: str, field: str, code: str
) -> None:
    async with client.get(f"/api/v1/metrics?{query}", headers=await _key(database_url, "t1")) as r:
        assert r.status == 400
        body = await r.json()
    assert body["code"] == "validation_error"
    assert [(d["field"], d["code"]) for d in body["details"]] == [(field, code)]


async def test_metrics_route_needs_a_key(client: TestClient[web.Request, web.Application]) -> None:
    async with client.get("/api/v1/metrics") as r:
        assert r.status == 401
        assert (await r.json())["code"] == "unauthorized"
