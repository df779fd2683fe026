"""Retention and erasure on a real PostgreSQL: only old notifications in a final status go, per tenant
overrides win, batches left empty go, and an erasure removes a recipient's rows under every form and says
what it removed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import asyncpg

from notify.adapters.postgres.retention import PgRetention
from notify.adapters.postgres.store import PgNotificationStore
from notify.app.retention import RetentionService
from notify.domain.ids import uuid7_at
from notify.domain.model import Batch, Channel
from tests.fakes import FakeClock
from tests.integration.test_delivery_stats import T0, Worker, a_notification


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    out = {}
    for table in ("notifications", "delivery_attempts", "status_history", "outbox", "batches"):
        out[table] = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return out


async def test_old_finished_notifications_go_in_chunks_and_overrides_win(pool: asyncpg.Pool) -> None:
    worker = Worker(PgNotificationStore(pool))
    old = T0
    recent = T0 + timedelta(days=20)
    finished_old = await worker.create(*(a_notification("a", created_at=old) for _ in range(3)))
    for n in finished_old:
        await worker.finish(n, old + timedelta(seconds=1))
    (still_pending_old,) = await worker.create(a_notification("a", created_at=old))
    (finished_recent,) = await worker.create(a_notification("a", created_at=recent))
    await worker.finish(finished_recent, recent + timedelta(seconds=1))
    (short_tenant,) = await worker.create(a_notification("short", created_at=recent))
    await worker.finish(short_tenant, recent + timedelta(seconds=1))

    clock = FakeClock(T0 + timedelta(days=30))
    service = RetentionService(PgRetention(pool), clock, days=25, days_by_tenant={"short": 5}, max_chunks=10)
    assert await service.purge_expired() == 4  # three old finished ones of "a", and "short"'s one (>5 days)
    left = {r["id"] for r in await pool.fetch("SELECT id FROM notifications")}
    assert left == {still_pending_old.id, finished_recent.id}  # not final, or not old enough
    # Everything that referenced them went with them.
    orphans = await pool.fetchval(
        "SELECT count(*) FROM status_history h "
        "WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = h.notification_id)"
    )
    assert orphans == 0
    assert await service.purge_expired() == 0


async def test_an_empty_old_batch_goes_too(pool: asyncpg.Pool) -> None:
    store = PgNotificationStore(pool)
    batch = Batch(uuid7_at(T0), "a", 1, T0)
    (n,) = [dataclasses.replace(a_notification("a", created_at=T0), batch_id=batch.id)]
    await store.create([n], batch)
    await Worker(store).finish(n, T0 + timedelta(seconds=1))
    service = RetentionService(PgRetention(pool), FakeClock(T0 + timedelta(days=2)), days=1)
    assert await service.purge_expired() == 1
    assert (await counts(pool))["batches"] == 0


async def test_erasing_a_recipient_removes_every_form_of_it_for_that_tenant_only(pool: asyncpg.Pool) -> None:
    worker = Worker(PgNotificationStore(pool))
    mine = await worker.create(
        a_notification("a", Channel.SMS, created_at=T0),  # stored as +14155550123
        a_notification("a", Channel.SMS, created_at=T0 + timedelta(seconds=1)),
    )
    await worker.finish(mine[0], T0 + timedelta(seconds=5))
    (someone_else,) = await worker.create(
        dataclasses.replace(a_notification("a", created_at=T0), recipient="+14155550999")
    )
    (other_tenant,) = await worker.create(a_notification("b", Channel.SMS, created_at=T0))
    service = RetentionService(PgRetention(pool), FakeClock(T0), days=None)

    erased = await service.erase("a", "+1 (415) 555-0123")  # as a person would type it
    assert (erased.notifications, erased.attempts, erased.status_changes) == (2, 1, 2)
    left = {r["id"] for r in await pool.fetch("SELECT id FROM notifications")}
    assert left == {someone_else.id, other_tenant.id}
    again = await service.erase("a", "+14155550123")
    assert again.notifications == 0
