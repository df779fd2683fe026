"""Operator actions through the real API and worker: who may pause what; replays that cannot send twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from notify.devtools.devstack import create_api_key
from tests.conftest import Stack
from tests.support import eventually


async def call(stack: Stack, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    async with stack.http.request(
        method, f"{stack.api_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        return r.status, await r.json()


async def send(stack: Stack, key: str, content: str) -> str:
    status, body = await call(
        stack,
        "POST",
        "/api/v1/notifications",
        key,
        {"channel": "sms", "recipient": "+14155550123", "content": content},
    )
    assert status == 201, body
    return str(body["id"])


async def status_of(stack: Stack, key: str, nid: str) -> str:
    _, body = await call(stack, "GET", f"/api/v1/notifications/{nid}", key)
    return str(body["status"])


async def wait_delivered(stack: Stack, key: str, nid: str) -> None:
    async def delivered() -> bool:
        return await status_of(stack, key, nid) == "delivered"

    await eventually(delivered, timeout_s=30, what=f"{nid} delivered")


async def test_a_tenant_pauses_only_its_own_traffic_and_the_global_switch_needs_an_admin_key(
    stack: Stack,
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(pause_refresh_s=0.2, recovery_interval_s=0.2)
    tenant_a = stack.api_key
    tenant_b = await create_api_key(stack.database_url, name="b", tenant_id="tenant-b")
    admin = await create_api_key(stack.database_url, name="ops", tenant_id="ops", admin=True)

    # Tenant B, empty body: what it owns, its own traffic. Not everyone's.
    status, state = await call(stack, "POST", "/api/v1/delivery/pause", tenant_b)
    assert status == 200, state
    assert (state["tenant_id"], state["paused"], state["tenant"]["paused"], state["global"]["paused"]) == (
        "tenant-b",
        True,
        True,
        False,
    )
    for body in ({"scope": "global"}, {"tenant_id": "tenant-a"}, {"tenant_id": "tenant-a", "channel": "sms"}):
        for action in ("pause", "resume"):
            status, error = await call(stack, "POST", f"/api/v1/delivery/{action}", tenant_b, body)
            assert status == 403 and set(error) == {"error", "code", "details"}, (body, error)
            assert error["code"] == "forbidden"
    status, error = await call(stack, "GET", "/api/v1/delivery?tenant_id=tenant-a", tenant_b)
    assert (status, error["code"]) == (403, "forbidden")
    _, seen_by_a = await call(stack, "GET", "/api/v1/delivery", tenant_a)
    assert seen_by_a["paused"] is False and seen_by_a["tenant_id"] == "tenant-a"

    held = await send(stack, tenant_b, "b waits")
    await asyncio.sleep(0.5)  # let every worker see the pause (NOTIFY_PAUSE_REFRESH_S = 0.2)
    first = await send(stack, tenant_a, "a goes")
    await wait_delivered(stack, tenant_a, first)  # tenant A is not held by B's pause
    assert await status_of(stack, tenant_b, held) == "pending"

    # The operator's switch holds everyone.
    status, state = await call(stack, "POST", "/api/v1/delivery/pause", admin)
    assert (status, state["global"]["paused"]) == (200, True), state
    _, seen_by_a = await call(stack, "GET", "/api/v1/delivery", tenant_a)
    assert (seen_by_a["paused"], seen_by_a["global"]["paused"], seen_by_a["tenant"]["paused"]) == (
        True,
        True,
        False,
    )
    status, for_a = await call(stack, "GET", "/api/v1/delivery?tenant_id=tenant-a", admin)
    assert (status, for_a["tenant_id"], for_a["paused"]) == (200, "tenant-a", True)
    await asyncio.sleep(0.5)
    second = await send(stack, tenant_a, "a waits too")
    await asyncio.sleep(1.0)
    assert await status_of(stack, tenant_a, second) == "pending"

    # B resuming its own pause does not lift the global one; the operator's resume does, for everyone.
    status, state = await call(stack, "POST", "/api/v1/delivery/resume", tenant_b)
    assert (status, state["tenant"]["paused"], state["paused"]) == (200, False, True)
    status, state = await call(stack, "POST", "/api/v1/delivery/resume", admin)
    assert (status, state["global"]["paused"]) == (200, False)
    await wait_delivered(stack, tenant_a, second)
    await wait_delivered(stack, tenant_b, held)
    received = {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]}
    assert received == {first, second, held}


async def test_replaying_a_notification_that_is_not_failed_is_refused_and_nothing_is_sent_twice(
    stack: Stack,
) -> None:
    await stack.start_sandbox("--latency-ms", "1500")  # slow enough to be caught in flight
    await stack.start_api()
    await stack.start_worker()
    key = stack.api_key
    in_flight = await send(stack, key, "being sent")

    async def processing() -> bool:
        return await status_of(stack, key, in_flight) == "processing"

    await eventually(processing, what="the notification in flight")
    status, error = await call(stack, "POST", f"/api/v1/notifications/{in_flight}/replay", key)
    assert (status, error["code"]) == (409, "illegal_transition"), error
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sms = {"channel": "sms", "recipient": "+14155550123", "content": "later", "scheduled_at": later}
    _, scheduled = await call(stack, "POST", "/api/v1/notifications", key, sms)
    status, error = await call(stack, "POST", f"/api/v1/notifications/{scheduled['id']}/replay", key)
    assert (status, error["code"]) == (409, "illegal_transition")
    await wait_delivered(stack, key, in_flight)
    status, error = await call(stack, "POST", f"/api/v1/notifications/{in_flight}/replay", key)
    assert (status, error["code"]) == (409, "illegal_transition")  # delivered: nothing to replay
    received = (await stack.sandbox(f"/messages?idempotency_key={in_flight}"))["count"]
    _, ledger = await call(stack, "GET", f"/api/v1/notifications/{in_flight}/attempts", key)
    assert (received, len(ledger["data"])) == (1, 1)


async def test_a_bulk_replay_is_bounded_and_says_what_remains(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    key = stack.api_key
    await stack.set_sandbox(error_rate=1.0, error_status=400)  # refused: failed at once
    ids = [await send(stack, key, f"doomed {i}") for i in range(5)]
    for nid in ids:

        async def failed(nid: str = nid) -> bool:
            return await status_of(stack, key, nid) == "failed"

        await eventually(failed, what=f"{nid} failed")
    await stack.set_sandbox(error_rate=0.0)
    status, body = await call(stack, "POST", "/api/v1/dead-letters/replay", key, {"limit": 2})
    assert (status, body) == (200, {"dry_run": False, "matched": 5, "replayed": 2, "remaining": 3})
    status, body = await call(stack, "POST", "/api/v1/dead-letters/replay", key, {"limit": 10_001})
    assert (status, body["code"], body["details"][0]["field"]) == (400, "validation_error", "limit")
    status, body = await call(stack, "POST", "/api/v1/dead-letters/replay", key, {"limit": 10})
    assert (status, body["replayed"], body["remaining"]) == (200, 3, 0)
    for nid in ids:
        await wait_delivered(stack, key, nid)
