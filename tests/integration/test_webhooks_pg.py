"""Webhook deliveries on a real PostgreSQL: written by the status trigger with the change, leased in order per
notification, taken over when a lease runs out, stored only by the lease holder."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from notify.adapters.postgres.store import PgNotificationStore
from notify.adapters.postgres.webhooks import PgWebhookEndpoints, PgWebhookQueue
from notify.domain.ids import uuid7_at
from notify.domain.model import Status
from notify.domain.webhooks import DeliveryStatus, WebhookCall, WebhookEndpoint, new_signing_secret
from tests.integration.test_delivery_stats import T0, Worker, a_notification


def endpoint(tenant: str = "t1", **fields: object) -> WebhookEndpoint:
    base: dict[str, object] = dict(
        id=uuid7_at(T0),
        tenant_id=tenant,
        url="https://hooks.example.com/x",
        statuses=frozenset(),
        channels=frozenset(),
        enabled=True,
        secret=new_signing_secret(),
        created_at=T0,
        updated_at=T0,
    )
    return WebhookEndpoint(**{**base, **fields})  # type: ignore[arg-type]


async def test_each_status_change_becomes_one_delivery_per_endpoint_that_wants_it(pool: asyncpg.Pool) -> None:
    endpoints = PgWebhookEndpoints(pool)
    every = endpoint()
    only_delivered = endpoint(id=uuid7_at(T0 + timedelta(seconds=1)), statuses=frozenset({Status.DELIVERED}))
    other_tenant = endpoint("t2", id=uuid7_at(T0 + timedelta(seconds=2)))
    switched_off = endpoint(id=uuid7_at(T0 + timedelta(seconds=3)), enabled=False)
    for e in (every, only_delivered, other_tenant, switched_off):
        await endpoints.add(e)
    worker = Worker(PgNotificationStore(pool))
    (n,) = await worker.create(a_notification("t1", created_at=T0))
    await worker.finish(n, T0 + timedelta(seconds=5))  # processing, then delivered

    rows = await pool.fetch(
        "SELECT endpoint_id, payload->>'status' AS status, event_id FROM webhook_deliveries ORDER BY id"
    )
    assert [(r["endpoint_id"], r["status"]) for r in rows] == [
        (every.id, "processing"),
        (every.id, "delivered"),
        (only_delivered.id, "delivered"),
    ]
    history = [r["id"] for r in await pool.fetch("SELECT id FROM status_history ORDER BY id")]
    assert sorted({r["event_id"] for r in rows}) == history  # the event id is the status change's


async def test_deliveries_are_leased_in_order_per_notification_and_retaken_after_a_lease_runs_out(
    pool: asyncpg.Pool,
) -> None:
    endpoints, queue = PgWebhookEndpoints(pool), PgWebhookQueue(pool)
    e = endpoint()
    await endpoints.add(e)
    worker = Worker(PgNotificationStore(pool))
    (n,) = await worker.create(a_notification("t1", created_at=T0))
    await worker.finish(n, T0 + timedelta(seconds=5))
    now = T0 + timedelta(minutes=1)

    first = await queue.claim_due("w1", now, now + timedelta(seconds=30), 10)
    assert [d.payload["status"] for d, _ in first] == ["processing"]  # "delivered" waits behind it
    assert await queue.claim_due("w2", now, now + timedelta(seconds=30), 10) == []  # leased

    # w1 died: after its lease, w2 takes the same delivery; w1's late answer is not stored.
    later = now + timedelta(seconds=31)
    (retaken,) = await queue.claim_due("w2", later, later + timedelta(seconds=30), 10)
    assert retaken[0].id == first[0][0].id
    call = WebhookCall(later, later, 200)
    assert await queue.record(first[0][0], "w1", call, DeliveryStatus.DELIVERED, None) is False
    assert await queue.record(retaken[0], "w2", call, DeliveryStatus.DELIVERED, None) is True

    (second,) = await queue.claim_due("w2", later, later + timedelta(seconds=30), 10)
    assert second[0].payload["status"] == "delivered"
    log = await endpoints.deliveries("t1", e.id, None, None, 10)
    assert log is not None and [(d.status, d.attempts) for d in log] == [
        (DeliveryStatus.PENDING, 0),
        (DeliveryStatus.DELIVERED, 1),
    ]
    assert await endpoints.deliveries("t2", e.id, None, None, 10) is None  # another tenant's: not found


async def test_an_endpoint_is_disabled_once_it_failed_for_long_enough_and_says_why(
    pool: asyncpg.Pool,
) -> None:
    endpoints, queue = PgWebhookEndpoints(pool), PgWebhookQueue(pool)
    e = endpoint()
    await endpoints.add(e)
    assert await queue.endpoint_failed(e.id, T0, 60, "HTTP 500") is False
    assert await queue.endpoint_failed(e.id, T0 + timedelta(seconds=59), 60, "HTTP 500") is False
    assert await queue.endpoint_failed(e.id, T0 + timedelta(seconds=60), 60, "HTTP 502: bad gateway") is True
    found = await endpoints.get("t1", e.id)
    assert found is not None and found.enabled is False and found.failing_since == T0
    assert found.disabled_reason is not None and "HTTP 502: bad gateway" in found.disabled_reason
