"""Backpressure: accepting needs PostgreSQL only, a slow or locked database is a 503 rather than a hang, and
past a configured unpublished backlog the API sheds load with 503 + Retry-After instead of growing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import asyncpg

from notify.devtools.processes import free_port
from notify.devtools.tansu import TansuBroker
from tests.conftest import Stack
from tests.e2e.test_observability import scrape, value
from tests.support import eventually

SMS = {"channel": "sms", "recipient": "+14155550123", "content": "hi"}


async def unpublished(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return count
    finally:
        await conn.close()


async def test_the_api_starts_accepts_and_is_ready_while_kafka_is_down(stack: Stack, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    stack.bootstrap = f"127.0.0.1:{port}"
    await stack.start_sandbox()
    await stack.start_api()  # waits for /health/ready: ready without Kafka
    async with aiohttp.ClientSession() as http, http.get(f"{stack.api_url}/health/ready") as r:
        body = await r.json()
    assert r.status == 200 and body["checks"] == {"database": "ok", "accepting": "ok"}, body
    assert body["also"]["kafka"].startswith("unavailable"), body
    ids = [(await stack.send_sms(f"while kafka is down {i}"))["id"] for i in range(5)]
    assert await unpublished(stack) == 5  # kept in the outbox
    broker = TansuBroker()
    broker.start(port, log_path=tmp_path / "late-tansu.log")
    try:

        async def relayed() -> bool:
            return await unpublished(stack) == 0

        await eventually(relayed, timeout_s=60, what="the outbox published once Kafka is up")
        await stack.start_worker()
        for nid in ids:

            async def delivered(nid: str = nid) -> bool:
                return (await stack.get(nid))["status"] == "delivered"

            await eventually(delivered, timeout_s=30, what=f"{nid} delivered")
    finally:
        await stack.close()  # the processes first, then the broker they talk to
        broker.stop()


async def test_past_the_backlog_limit_new_notifications_get_503_with_retry_after(stack: Stack) -> None:
    # No relay: everything accepted stays unpublished, as during a long Kafka outage.
    await stack.start_api(outbox_relay_enabled="false", max_outbox_backlog=5, metrics_refresh_s=0.2)
    accepted = 0
    for i in range(5):
        await stack.send_sms(f"fits {i}")
        accepted += 1

    async def shedding() -> tuple[int, dict[str, object], str] | None:
        nonlocal accepted
        async with stack.http.post(f"{stack.api_url}/api/v1/notifications", json=SMS) as r:
            if r.status == 201:  # the limit is enforced from the next backlog refresh (0.2 s) on
                accepted += 1
                return None
            return r.status, await r.json(), r.headers.get("Retry-After", "")

    status, error, retry_after = await eventually(shedding, what="the backlog limit enforced")
    assert (status, error["code"], set(error)) == (503, "overloaded", {"error", "code", "details"})
    assert int(retry_after) >= 1
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.api_url}/health/ready") as r:
            assert r.status == 503  # not ready: it cannot accept
        samples = await scrape(http, stack.api_url)
    assert value(samples, "notify_http_unavailable_total", reason="overloaded") >= 1
    batch = {"notifications": [SMS, SMS]}
    async with stack.http.post(f"{stack.api_url}/api/v1/notifications/batch", json=batch) as r:
        assert (r.status, (await r.json())["code"]) == (503, "overloaded")
    # What was accepted is all still there; what was refused left nothing behind.
    assert await unpublished(stack) == accepted


async def test_a_locked_database_answers_503_within_the_deadline_and_health_stays_up(stack: Stack) -> None:
    await stack.start_api(api_request_timeout_s=1)
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
            async with stack.http.post(f"{stack.api_url}/api/v1/notifications", json=SMS) as r:
                answer = await r.json()
                assert (r.status, answer["code"]) == (503, "timeout"), answer
                assert r.headers["Retry-After"] == "1"
            async with aiohttp.ClientSession() as http, http.get(f"{stack.api_url}/health") as r:
                assert r.status == 200
    finally:
        await conn.close()
    created = await stack.send_sms("once the lock is gone")
    assert created["status"] == "pending"
