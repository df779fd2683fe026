"""End to end: `notify sandbox`, `notify api` and `notify worker` as real subprocesses, on real
PostgreSQL and a real Tansu broker. Each test has its own database, topics and consumer group
(see tests/conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import Stack
from tests.e2e.test_observability import scrape, value
from tests.support import NotifyProcess, eventually, wait_log


async def wait_all_status(stack: Stack, total: int, status: str = "delivered", timeout_s: float = 60) -> None:
    async def done() -> bool:
        return (await stack.statuses()).get(status, 0) == total

    await eventually(done, timeout_s=timeout_s, interval_s=0.2, what=f"{total} notifications {status}")


async def post_many(
    stack: Stack, count: int, *, priority: str = "normal", concurrency: int = 20
) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            body = await stack.send_sms(f"message {i}", priority=priority)
            return str(body["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_a_post_is_delivered_once_with_the_right_body_and_headers(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    status, created = await stack.post(
        {
            "channel": "email",
            "recipient": "Ann@Example.com",
            "subject": "Your receipt",
            "content": "Thanks for your order",
            "metadata": {"order_id": 42},
        },
        headers={"X-Correlation-ID": "corr-e2e-1"},
    )
    assert status == 201, created
    assert created["status"] == "pending"
    assert created["recipient"] == "Ann@example.com"

    async def delivered() -> dict[str, Any] | None:
        n = await stack.get(created["id"])
        return n if n["status"] == "delivered" else None

    final = await eventually(delivered, what="delivered")
    assert final["attempts"] == 1
    assert final["provider"] == "sandbox"
    assert final["provider_message_id"].startswith("sbx-")
    assert final["sent_at"] is not None and final["error_message"] is None

    received = await stack.sandbox(f"/messages?idempotency_key={created['id']}")
    assert received["count"] == 1
    message = received["messages"][0]
    assert message["body"] == {
        "id": created["id"],
        "to": "Ann@example.com",
        "channel": "email",
        "subject": "Your receipt",
        "content": "Thanks for your order",
        "metadata": {"order_id": 42},
    }
    assert message["correlation_id"] == "corr-e2e-1"
    assert message["message_id"] == final["provider_message_id"]
    assert (await stack.sandbox("/stats"))["accepted"] == 1


BAD_BODIES: list[tuple[Any, str, str]] = [
    ({"channel": "sms", "recipient": "+1415", "content": "x"}, "recipient", "invalid_phone_number"),
    (
        {"channel": "sms", "recipient": "0044 7911 123456", "content": "x"},
        "recipient",
        "invalid_phone_number",
    ),
    ({"channel": "sms", "recipient": "+14155550123", "content": "x" * 1601}, "content", "too_long"),
    ({"channel": "sms", "recipient": "+14155550123"}, "content", "required"),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "subject": "s"},
        "subject",
        "not_allowed",
    ),
    ({"channel": "email", "recipient": "not-an-address", "content": "x"}, "recipient", "invalid_email"),
    ({"channel": "email", "recipient": "a@example.com", "content": "x" * 100_001}, "content", "too_long"),
    ({"channel": "push", "recipient": "", "content": "x"}, "recipient", "invalid_push_token"),
    ({"channel": "push", "recipient": "t" * 4097, "content": "x"}, "recipient", "invalid_push_token"),
    ({"channel": "push", "recipient": "tok", "content": "x" * 4097}, "content", "too_long"),
    ({"channel": "fax", "recipient": "x", "content": "x"}, "channel", "enum"),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "priority": "urgent"},
        "priority",
        "enum",
    ),
    ({"channel": "sms", "recipient": 14155550123, "content": "x"}, "recipient", "string_type"),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "colour": "red"},
        "colour",
        "extra_forbidden",
    ),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "scheduled_at": "tomorrow"},
        "scheduled_at",
        "value_error",
    ),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "expires_at": "2020-01-01T00:00:00Z"},
        "expires_at",
        "in_past",
    ),
    (
        {"channel": "sms", "recipient": "+14155550123", "content": "x", "metadata": [1]},
        "metadata",
        "dict_type",
    ),
    ([{"channel": "sms"}], "body", "model_type"),
]


async def test_every_validation_rule_answers_400_in_the_error_shape_and_stores_nothing(stack: Stack) -> None:
    await stack.start_api(max_body_bytes=2 * 1024 * 1024)
    for body, field, code in BAD_BODIES:
        status, answer = await stack.post(body)
        assert status == 400, (body, answer)
        assert set(answer) == {"error", "code", "details"}
        assert answer["code"] == "validation_error"
        assert isinstance(answer["error"], str) and answer["error"]
        assert {"field": field, "code": code} in [
            {"field": d["field"], "code": d["code"]} for d in answer["details"]
        ], (
            body,
            answer,
        )

    raw_cases = [(b"{not json", 400, "validation_error"), (b"", 400, "validation_error")]
    for raw, want_status, want_code in raw_cases:
        async with stack.http.post(f"{stack.api_url}/api/v1/notifications", data=raw) as r:
            answer = await r.json()
            assert (r.status, answer["code"]) == (want_status, want_code), answer
    big = (
        b'{"channel": "email", "recipient": "a@example.com", "content": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    )
    async with stack.http.post(f"{stack.api_url}/api/v1/notifications", data=big) as r:
        assert r.status == 413
        assert (await r.json())["code"] == "payload_too_large"
    for query in (
        "status=bogus",
        "channel=fax",
        "page_size=0",
        "page_size=101",
        "date_from=yesterday",
        "cursor=!!",
        "unknown=1",
        "status=pending&status=failed",
        "batch_id=nope",
    ):
        async with stack.http.get(f"{stack.api_url}/api/v1/notifications?{query}") as r:
            answer = await r.json()
            assert r.status == 400, (query, answer)
            assert answer["code"] == "validation_error" and answer["details"], (query, answer)
    async with stack.http.get(f"{stack.api_url}/api/v1/notifications/not-a-uuid") as r:
        assert r.status == 400
    async with stack.http.get(f"{stack.api_url}/api/v1/nothing-here") as r:
        assert (r.status, (await r.json())["code"]) == (404, "not_found")
    async with stack.http.delete(f"{stack.api_url}/api/v1/notifications") as r:
        assert (r.status, (await r.json())["code"]) == (405, "method_not_allowed")

    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await conn.close()


async def test_correlation_id_is_echoed_or_generated(stack: Stack) -> None:
    await stack.start_api()
    async with stack.http.get(f"{stack.api_url}/health", headers={"X-Correlation-ID": "abc-123"}) as r:
        assert r.headers["X-Correlation-ID"] == "abc-123"
    async with stack.http.get(f"{stack.api_url}/api/v1/nothing") as r:
        assert len(r.headers["X-Correlation-ID"]) == 32


async def test_list_pages_through_everything_with_filters(stack: Stack) -> None:
    await stack.start_api()
    ids = [
        str((await stack.send_sms(f"m{i}", priority="high" if i % 3 == 0 else "low"))["id"])
        for i in range(12)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        query = "page_size=5" + (f"&cursor={cursor}" if cursor else "")
        async with stack.http.get(f"{stack.api_url}/api/v1/notifications?{query}") as r:
            page = await r.json()
        seen += [n["id"] for n in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    async with stack.http.get(f"{stack.api_url}/api/v1/notifications?priority=high&status=pending") as r:
        page = await r.json()
    assert {n["id"] for n in page["data"]} == {ids[i] for i in range(0, 12, 3)}


async def test_cancel_before_delivery_is_never_sent_and_after_delivery_is_409(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    doomed = await stack.send_sms("never send me")
    status, cancelled = await stack.cancel(doomed["id"])
    assert (status, cancelled["status"]) == (200, "cancelled")
    status, again = await stack.cancel(doomed["id"])
    assert (status, again["code"]) == (409, "illegal_transition")

    await stack.start_worker()  # it now reads the cancelled notification's record too
    kept = await stack.send_sms("send me")

    async def delivered() -> bool:
        return (await stack.get(kept["id"]))["status"] == "delivered"

    await eventually(delivered, what="the kept notification delivered")

    async def doomed_record_read() -> bool:
        # The cancelled notification's record may sit in another partition than the kept one's: wait until
        # the worker has read it and dropped it (the only record it skips here), then check nothing was sent.
        return await rounds(stack, "worker", "skipped") >= 1

    await eventually(
        doomed_record_read, what="the worker to read and skip the cancelled notification's record"
    )
    assert (await stack.get(doomed["id"]))["status"] == "cancelled"
    assert (await stack.sandbox(f"/messages?idempotency_key={doomed['id']}"))["count"] == 0
    status, answer = await stack.cancel(kept["id"])
    assert (status, answer["code"]) == (409, "illegal_transition")


async def post_high_once_the_provider_has(stack: Stack, lows: int, what: str) -> tuple[str, int]:
    """Once the provider got ``lows`` notifications, post a high-priority one; its id, and how many the
    provider had got just before the POST."""

    async def busy() -> bool:
        return (await stack.sandbox("/stats"))["accepted"] >= lows  # type: ignore[no-any-return]

    await eventually(busy, what=what)
    before: int = (await stack.sandbox("/stats"))["accepted"]
    high = await stack.send_sms("urgent", priority="high")
    return str(high["id"]), before


async def lows_sent_before(stack: Stack, high_id: str, low_ids: set[str]) -> int:
    """Wait for the high-priority notification to be delivered; how many of ``low_ids`` the provider got
    before it."""

    async def high_delivered() -> bool:
        return (await stack.get(high_id))["status"] == "delivered"

    await eventually(high_delivered, timeout_s=60, what="the high-priority notification delivered")
    messages = (await stack.sandbox("/messages"))["messages"]
    position = next(m["seq"] for m in messages if m["idempotency_key"] == high_id)
    return sum(1 for m in messages if m["seq"] < position and m["idempotency_key"] in low_ids)


async def test_high_priority_overtakes_a_backlog_of_2000_low(stack: Stack) -> None:
    await stack.start_sandbox("--latency-ms", "20")
    await stack.start_api()
    low_ids = set(await post_many(stack, 2000, priority="low"))

    async def all_published() -> bool:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return (
                await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind = 'dispatch'"
                )
                == 0
            )  # type: ignore[no-any-return]
        finally:
            await conn.close()

    await eventually(all_published, what="the low backlog on Kafka")
    await stack.start_worker(worker_concurrency=8)

    high_id, before = await post_high_once_the_provider_has(stack, 100, "the worker busy with the backlog")
    ahead = await lows_sent_before(stack, high_id, low_ids) - before
    print(f"high delivered after {ahead} more low ({before} low were sent before its POST)")
    # FIFO would have put it behind every low still waiting (over 1,800). True priority: only the lows
    # already in flight (8 slots) or started while it travelled API -> outbox -> Kafka -> worker, at 20 ms
    # a send (about 10 measured; the bound leaves room for a slow machine).
    assert ahead <= 64, f"high waited behind {ahead} low notifications sent after it was posted"


@pytest.mark.parametrize("scope", ["cluster", "process"])
async def test_high_priority_does_not_queue_behind_lows_waiting_for_a_rate_limited_channel(
    stack: Stack, scope: str
) -> None:
    """At a provider's rate limit the worker's slots fill with lows waiting for tokens; a high notification
    takes the channel's next token, not its place at the end of that queue."""
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(worker_concurrency=32, rate_limit_sms=10, rate_limit_scope=scope)
    low_ids = set(await post_many(stack, 80, priority="low"))

    high_id, before = await post_high_once_the_provider_has(
        stack, 5, "lows sent at the rate, the rest waiting for tokens"
    )
    ahead = await lows_sent_before(stack, high_id, low_ids) - before
    print(f"scope={scope}: high delivered after {ahead} more low ({before} were sent before its POST)")
    # At the end of the queue it would wait for every low already holding a slot (28 of 32; at 10/s, ~3 s).
    # Ahead of it: the lows sent while it travelled API -> outbox -> Kafka -> worker (a token every 0.1 s).
    assert ahead <= 8, f"high waited behind {ahead} low notifications sent after it was posted"


async def test_high_priority_accepted_behind_an_unpublished_low_backlog_is_published_first(
    stack: Stack,
) -> None:
    """The backlog is still in the outbox (as after a broker outage, or a large import the relay is still
    publishing): the relay publishes the high notification before it, so the worker does not deliver the
    backlog's first publishes while the high one waits in PostgreSQL."""
    await stack.start_sandbox("--latency-ms", "20")
    await stack.start_api(outbox_relay_enabled="false")  # accepts, publishes nothing
    low_ids: set[str] = set()
    for _ in range(3):
        low = {"channel": "sms", "recipient": "+14155550123", "content": "later", "priority": "low"}
        body = {"notifications": [low] * 1000}
        async with stack.http.post(f"{stack.api_url}/api/v1/notifications/batch", json=body) as r:
            assert r.status == 201, await r.text()
            low_ids |= {n["id"] for n in (await r.json())["notifications"]}
    high = await stack.send_sms("urgent", priority="high")  # accepted last
    await stack.start_worker(worker_concurrency=8, outbox_relay_enabled="false")  # consuming, nothing to read
    # A relay that publishes 20 records a round: the backlog takes it many rounds while the worker delivers.
    await stack.start_api("relay", outbox_batch_size=20)
    ahead = await lows_sent_before(stack, high["id"], low_ids)
    print(f"high delivered after {ahead} low")
    # Published in id order it would come after all 3,000 lows, with hundreds delivered meanwhile. Published
    # first, only the lows of that first round (20) and those already in the worker's 8 slots can be ahead.
    assert ahead <= 40, f"high waited behind {ahead} low notifications"


async def test_api_killed_after_commit_before_publish_loses_nothing(stack: Stack) -> None:
    await stack.start_sandbox()
    api = await stack.start_api(outbox_relay_enabled="false")
    ids = [str((await stack.send_sms(f"m{i}"))["id"]) for i in range(20)]
    api.kill()  # SIGKILL: committed, never published
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 20
    finally:
        await conn.close()
    await stack.start_worker(outbox_relay_enabled="false")  # consumes, but cannot see the records yet
    await asyncio.sleep(1.0)
    assert (await stack.statuses()) == {"pending": 20}
    stack.apis.clear()
    await stack.start_api("api-again")  # its relay finds the records left behind
    await wait_all_status(stack, 20)
    stats = await stack.sandbox("/stats")
    assert stats["accepted"] == 20 and stats["duplicates"] == {}
    assert {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]} == set(ids)


async def rounds(stack: Stack, worker: str, outcome: str) -> float:
    async with aiohttp.ClientSession() as http:
        samples = await scrape(http, stack.workers[worker])
    return value(samples, "notify_delivery_rounds_total", missing=0, outcome=outcome)


def process(stack: Stack, name: str) -> NotifyProcess:
    return next(p for p in stack.processes if p.name == name)


async def held_by(stack: Stack, worker: str) -> set[str]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM notifications WHERE status = 'processing' AND lease_owner LIKE $1", f"{worker}#%"
        )
    finally:
        await conn.close()
    return {str(r["id"]) for r in rows}


async def test_workers_joining_leaving_and_killed_mid_load_send_each_notification_once(stack: Stack) -> None:
    """Four workers race over one backlog: two join mid-load (rebalances), every record is published twice on
    purpose, one leaves (SIGTERM), one is SIGKILLed while another joins. Each notification reaches the
    provider once; the only exceptions are what the SIGKILLed worker held, each sent again with the same
    Idempotency-Key after its lease ran out."""
    total = 2000
    await stack.start_sandbox("--latency-ms", "50")
    await stack.start_api()
    ids = await post_many(stack, total)
    options = {
        "worker_concurrency": 8,
        "worker_lease_s": 3,
        "provider_timeout_s": 1,
        "recovery_interval_s": 0.2,
    }
    w1 = await stack.start_worker("worker-1", **options)

    async def accepted_at_least(n: int) -> bool:
        return (await stack.sandbox("/stats"))["accepted"] >= n  # type: ignore[no-any-return]

    await eventually(lambda: accepted_at_least(150), timeout_s=60, what="worker-1 under way")
    await asyncio.gather(  # they join: the group rebalances mid-load
        stack.start_worker("worker-2", **options), stack.start_worker("worker-3", **options)
    )
    # Every dispatch record published a second time: each notification now has two records in flight.
    conn = await asyncpg.connect(stack.database_url)
    try:
        republished = await conn.execute("UPDATE outbox SET published_at = NULL WHERE kind = 'dispatch'")
    finally:
        await conn.close()
    assert republished == f"UPDATE {total}"

    async def all_three_delivered() -> list[float] | None:
        got = [await rounds(stack, w, "delivered") for w in ("worker-1", "worker-2", "worker-3")]
        return None if not all(got) else got

    try:
        await eventually(all_three_delivered, timeout_s=60, what="every worker delivering")
    except AssertionError as exc:
        got = [await rounds(stack, w, "delivered") for w in ("worker-1", "worker-2", "worker-3")]
        raise AssertionError(f"{exc}; delivered by each: {got}; {await stack.statuses()}") from None
    skipped = {"worker-1": await rounds(stack, "worker-1", "skipped")}
    assert await asyncio.to_thread(w1.terminate) == 0  # leaves gracefully: another rebalance
    w4 = await stack.start_worker("worker-4", wait=False, **options)
    # It joins the group next (on Tansu a join takes seconds): worker-2 dies while the group rebalances.
    await wait_log(w4, "worker http listening")
    skipped["worker-2"] = await rounds(stack, "worker-2", "skipped")
    process(stack, "worker-2").kill()  # ...and worker-2 dies in the middle of it
    held = await held_by(stack, "worker-2")
    assert (await stack.statuses()).get("delivered", 0) < total, "the load was over before the kill"

    await wait_all_status(stack, total, timeout_s=120)
    stats = await stack.sandbox("/stats")
    assert stats["unique_keys"] == total
    assert {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]} == set(ids)
    # Sent twice: only what the SIGKILLed worker was delivering, and each one just once more.
    assert set(stats["duplicates"]) <= held, (stats["duplicates"], held)
    assert set(stats["duplicates"].values()) <= {2}
    # The duplicate records were read, and dropped by the claim. The last of them may still be read after
    # every notification is delivered (they sit behind the originals in their partitions).

    async def duplicates_skipped() -> bool:
        for w in ("worker-3", "worker-4"):
            skipped[w] = await rounds(stack, w, "skipped")
        return sum(skipped.values()) > 0

    await eventually(duplicates_skipped, timeout_s=30, what="a duplicate record read and skipped")


async def test_worker_killed_mid_load_and_restarted_delivers_everything(stack: Stack) -> None:
    await stack.start_sandbox("--latency-ms", "10")
    await stack.start_api()
    worker = await stack.start_worker(worker_concurrency=16, worker_lease_s=3, provider_timeout_s=1)
    ids = await post_many(stack, 600)

    async def busy() -> bool:
        return (await stack.sandbox("/stats"))["accepted"] >= 100  # type: ignore[no-any-return]

    await eventually(busy, what="the first worker to be mid-load")
    worker.kill()
    before = await stack.statuses()
    assert before.get("delivered", 0) < 600, "the kill came too late to test anything"
    await stack.start_worker(
        "worker-restarted", worker_concurrency=16, worker_lease_s=3, provider_timeout_s=1
    )
    await wait_all_status(stack, 600, timeout_s=90)
    stats = await stack.sandbox("/stats")
    assert stats["unique_keys"] == 600
    # Only what was in flight at the SIGKILL can reach the provider twice, and it carries the same
    # Idempotency-Key both times so the provider can drop it.
    assert len(stats["duplicates"]) <= 16, stats["duplicates"]
    assert {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]} == set(ids)


async def test_sigterm_drains_in_flight_work_and_exits_zero(stack: Stack) -> None:
    await stack.start_sandbox("--latency-ms", "200")
    await stack.start_api()
    worker = await stack.start_worker(worker_concurrency=8, worker_shutdown_grace_s=10)
    await post_many(stack, 40)

    async def in_flight() -> bool:
        return (await stack.statuses()).get("processing", 0) > 0

    await eventually(in_flight, what="deliveries in flight")
    assert await asyncio.to_thread(worker.terminate, 30) == 0
    assert "consumer stopped" in worker.log_text()
    after = await stack.statuses()
    assert after.get("processing", 0) == 0, after  # drained: nothing left half-done
    await stack.start_worker("worker-2")
    await wait_all_status(stack, 40)
    assert (await stack.sandbox("/stats"))["duplicates"] == {}
