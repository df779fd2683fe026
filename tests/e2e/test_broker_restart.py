"""A broker crash and restart (Tansu is memory-only: topics, records, groups and offsets all vanish) loses
nothing: PostgreSQL is the source of truth, and what the broker dropped is published again."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from notify.devtools.infra import TansuBroker
from tests.conftest import Stack
from tests.e2e.test_observability import live_client, now_true
from tests.e2e.test_walking_skeleton import post_many, wait_all_status
from tests.support import eventually

pytestmark = pytest.mark.timeout(240)


async def test_a_broker_crash_mid_load_loses_no_notification_and_live_status_resumes(
    stack: Stack, broker: TansuBroker
) -> None:
    await stack.start_sandbox("--latency-ms", "50")
    # Records the broker lost are re-published by the stale-pending sweep: 4 s here instead of 120 s.
    await stack.start_api(stale_pending_s="4")
    await stack.start_worker(worker_concurrency=4, stale_pending_s="4")
    async with (
        aiohttp.ClientSession() as http,
        live_client(http, stack.api_url, stack.api_key, "live") as live,
    ):
        ids = await post_many(stack, 200)

        async def some_delivered() -> bool:
            return (await stack.statuses()).get("delivered", 0) >= 10

        await eventually(some_delivered, what="delivery under way")
        await asyncio.to_thread(broker.restart, crash=True)  # SIGKILL, then a new, empty broker
        assert (await stack.statuses()).get("delivered", 0) < 200, "the crash came too late to test anything"
        after_restart = [(await stack.send_sms(f"after {i}"))["id"] for i in range(20)]

        await wait_all_status(stack, 220, timeout_s=120)
        stats = await stack.sandbox("/stats")
        assert stats["unique_keys"] == 220
        received = {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]}
        assert received == set(ids + after_restart)
        # Only what was in flight at the crash may have been sent twice (same Idempotency-Key).
        assert len(stats["duplicates"]) <= 4, stats["duplicates"]

        # Live status came back too: the API's status reader started again at the new broker's end.
        def seen_after_restart() -> bool:
            delivered = {e["notification_id"] for e in live.events if e["status"] == "delivered"}
            return set(after_restart) <= delivered

        await eventually(now_true(seen_after_restart), what="live events after the restart", timeout_s=30)
