"""The console's overview queries and the workers' reports, on a real PostgreSQL: per tenant and for every
tenant (an admin's view)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import asyncpg
import pytest

from notify.adapters.postgres.overview import PgOverview, PgWorkerReports
from notify.adapters.postgres.store import PgNotificationStore
from notify.domain.ids import uuid7_at
from notify.domain.model import Batch, Channel, Status
from notify.ports.overview import MinuteOutcomes, WorkerReport
from tests.integration.test_delivery_stats import T0, Worker, a_notification


@pytest.fixture
def worker(pool: asyncpg.Pool) -> Worker:
    return Worker(PgNotificationStore(pool))


@pytest.fixture
def overview(pool: asyncpg.Pool) -> PgOverview:
    return PgOverview(pool)


async def test_counts_and_outcomes_per_minute_for_one_tenant_and_for_every_tenant(
    worker: Worker, overview: PgOverview
) -> None:
    a1, a2, a3 = await worker.create(*(a_notification("a", created_at=T0) for _ in range(3)))
    (b1,) = await worker.create(a_notification("b", Channel.EMAIL, created_at=T0))
    await worker.finish(a1, T0 + timedelta(seconds=10))
    await worker.finish(a2, T0 + timedelta(minutes=1, seconds=5), Status.FAILED)
    await worker.finish(b1, T0 + timedelta(minutes=1, seconds=20))

    assert await overview.status_counts("a", T0) == {Status.DELIVERED: 1, Status.FAILED: 1, Status.PENDING: 1}
    assert await overview.status_counts(None, T0) == {
        Status.DELIVERED: 2,
        Status.FAILED: 1,
        Status.PENDING: 1,
    }
    assert await overview.status_counts("a", T0 + timedelta(hours=1)) == {}  # only notifications since then

    minute = T0.replace(second=0)
    assert await overview.outcomes_per_minute("a", T0) == [
        MinuteOutcomes(minute, Channel.SMS, 1, 0),
        MinuteOutcomes(minute + timedelta(minutes=1), Channel.SMS, 0, 1),
    ]
    every = await overview.outcomes_per_minute(None, T0 + timedelta(minutes=1))
    assert every == [
        MinuteOutcomes(minute + timedelta(minutes=1), Channel.EMAIL, 1, 0),
        MinuteOutcomes(minute + timedelta(minutes=1), Channel.SMS, 0, 1),
    ]
    health = await overview.provider_health("a", T0)
    assert [(h.provider, h.attempts, h.failures) for h in health] == [("p", 2, 1)]
    assert health[0].error_rate == 0.5
    assert [(h.provider, h.attempts) for h in await overview.provider_health(None, T0)] == [("p", 3)]
    assert await overview.unpublished_outbox() > 0  # nothing relays here: every record waits
    assert a3.status is Status.PENDING


async def test_recent_batches_come_with_their_counts_newest_first(
    pool: asyncpg.Pool, overview: PgOverview
) -> None:
    store = PgNotificationStore(pool)
    batches = []
    for i, tenant in enumerate(["a", "a", "b"]):
        at = T0 + timedelta(minutes=i)
        batch = Batch(uuid7_at(at), tenant, 2, at)
        items = [
            dataclasses.replace(a_notification(tenant, created_at=at), batch_id=batch.id) for _ in range(2)
        ]
        await store.create(items, batch)
        batches.append(batch)
    mine = await overview.recent_batches("a", 10)
    assert [b.batch.id for b in mine] == [batches[1].id, batches[0].id]
    assert mine[0].counts == {Status.PENDING: 2}
    assert [b.batch.id for b in await overview.recent_batches(None, 2)] == [batches[2].id, batches[1].id]


async def test_a_workers_report_replaces_its_last_and_stale_ones_are_left_out(pool: asyncpg.Pool) -> None:
    reports, overview = PgWorkerReports(pool), PgOverview(pool)
    await reports.report(WorkerReport("w1", T0, {"n.high": 3}, {"sms:a": "closed"}, {"sms": 5.0}))
    await reports.report(
        WorkerReport("w1", T0 + timedelta(seconds=5), {"n.high": 1}, {"sms:a": "open"}, {"sms": 5.0})
    )
    await reports.report(WorkerReport("w2", T0 - timedelta(minutes=5), {}, {}, {"sms": None}))
    fresh = await overview.worker_reports(T0)
    assert fresh == [
        WorkerReport("w1", T0 + timedelta(seconds=5), {"n.high": 1}, {"sms:a": "open"}, {"sms": 5.0})
    ]
    assert [r.worker_id for r in await overview.worker_reports(T0 - timedelta(hours=1))] == ["w1", "w2"]
    stored = await pool.fetchval("SELECT jsonb_typeof(breakers) FROM worker_reports WHERE worker_id = 'w1'")
    assert stored == "object"  # a JSON object, not a string holding one
    # A worker gone for a day is forgotten by the next report.
    await reports.report(WorkerReport("w1", T0 + timedelta(days=2), {}, {}, {}))
    assert [r.worker_id for r in await overview.worker_reports(T0 - timedelta(days=30))] == ["w1"]


async def test_tenants_are_those_with_keys(pool: asyncpg.Pool, overview: PgOverview) -> None:
    before = await overview.tenants()
    await pool.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at, scope) "
        "VALUES (gen_random_uuid(), 'zeta', 'z', 'ntf_z', 'h1', now(), 'tenant'), "
        "(gen_random_uuid(), 'alpha', 'a', 'ntf_a', 'h2', now(), 'tenant'), "
        "(gen_random_uuid(), 'alpha', 'a2', 'ntf_b', 'h3', now(), 'admin')"
    )
    assert await overview.tenants() == sorted({*before, "alpha", "zeta"})
