"""End to end for the delivery engine (issue 3): retries, dead letters, breakers, failover, scheduling,
expiry, pause/resume and cancel races, with the real processes and the sandbox provider's knobs."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.e2e.test_walking_skeleton import post_many, rounds, wait_all_status
from tests.support import eventually

FAST_RETRIES = {"retry_base_s": 0.5, "retry_cap_s": 2, "recovery_interval_s": 0.2}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def attempts(stack: Stack, notification_id: str) -> list[dict[str, Any]]:
    async with stack.http.get(f"{stack.api_url}/api/v1/notifications/{notification_id}/attempts") as r:
        assert r.status == 200, await r.text()
        return (await r.json())["data"]  # type: ignore[no-any-return]


async def wait_status(
    stack: Stack, notification_id: str, status: str, timeout_s: float = 30
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        n = await stack.get(notification_id)
        return n if n["status"] == status else None

    return await eventually(reached, timeout_s=timeout_s, interval_s=0.1, what=f"{notification_id} {status}")  # type: ignore[no-any-return]


async def api_post(stack: Stack, path: str, body: Any = None) -> tuple[int, Any]:
    async with stack.http.post(f"{stack.api_url}{path}", json=body) as r:
        return r.status, await r.json()


async def status_events(stack: Stack, notification_id: str) -> list[dict[str, Any]]:
    """The notification's status events, in the order they were written (from the outbox)."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE kind = 'status' AND notification_id = $1 ORDER BY id",
            UUID(notification_id),
        )
    finally:
        await conn.close()
    return [json.loads(r["payload"]) for r in rows]


async def test_transient_errors_then_success_after_each_backoff(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(retry_base_s=1, retry_cap_s=30, recovery_interval_s=0.2)
    await stack.set_sandbox(fail_next=2, error_status=503)
    n = await stack.send_sms("flaky")
    final = await wait_status(stack, n["id"], "delivered")
    assert final["attempts"] == 3
    ledger = await attempts(stack, n["id"])
    assert [(a["attempt"], a["outcome"], a["http_status"]) for a in ledger] == [
        (1, "transient", 503),
        (2, "transient", 503),
        (3, "delivered", None),
    ]
    # Each retry was scheduled after the failed call and not tried before its time (order of the stored
    # timestamps; the jittered delay itself is the retry policy's, tested in tests/unit).
    retrying = [e for e in await status_events(stack, n["id"]) if e["status"] == "retrying"]
    assert [e["attempt"] for e in retrying] == [1, 2]
    for failed, retry, next_call in zip(ledger, retrying, ledger[1:], strict=False):
        due = parse(retry["next_attempt_at"])
        assert parse(failed["finished_at"]) <= due <= parse(next_call["started_at"])
    assert (await stack.sandbox("/stats"))["accepted"] == 1
    # The timeline keeps every step, from the database (the outbox keeps status events only an hour).
    async with stack.http.get(f"{stack.api_url}/api/v1/notifications/{n['id']}/events") as r:
        steps = [(c["status"], c["attempt"]) for c in (await r.json())["data"]]
    assert steps == [
        ("pending", 0),
        ("processing", 1),
        ("retrying", 1),
        ("processing", 2),
        ("retrying", 2),
        ("processing", 3),
        ("delivered", 3),
    ]


async def test_permanent_failure_and_exhaustion_dead_letter_and_replay_delivers(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api(max_retries_normal=2)  # fixed at acceptance, stored with the notification
    await stack.start_worker(**FAST_RETRIES)
    await stack.set_sandbox(fail_next=1, error_status=400)
    refused = await stack.send_sms("bad")
    failed = await wait_status(stack, refused["id"], "failed")
    assert failed["attempts"] == 1
    assert "HTTP 400" in failed["error_message"]

    await stack.set_sandbox(error_rate=1.0, error_status=500)
    exhausted = await stack.send_sms("doomed")
    failed = await wait_status(stack, exhausted["id"], "failed")
    assert failed["attempts"] == 3  # the first attempt and 2 retries
    assert "retries exhausted" in failed["error_message"]

    consumer = AIOKafkaConsumer(
        f"{stack.prefix}.dlq", bootstrap_servers=stack.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: set[str] = set()

        async def both_on_dlq() -> bool:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.update(json.loads(r.value)["notification_id"] for r in records)
            return seen >= {refused["id"], exhausted["id"]}

        await eventually(both_on_dlq, what="both notifications on the dead-letter topic")
    finally:
        await consumer.stop()

    async with stack.http.get(f"{stack.api_url}/api/v1/dead-letters?error=exhausted") as r:
        listed = await r.json()
    assert [n["id"] for n in listed["data"]] == [exhausted["id"]]

    await stack.set_sandbox(error_rate=0.0)
    status, body = await api_post(
        stack, "/api/v1/dead-letters/replay", {"error": "exhausted", "dry_run": True}
    )
    assert (status, body["matched"], body["replayed"], body["remaining"]) == (200, 1, 0, 1)
    status, replayed = await api_post(stack, f"/api/v1/notifications/{exhausted['id']}/replay")
    assert (status, replayed["status"]) == (200, "pending")
    final = await wait_status(stack, exhausted["id"], "delivered")
    assert final["attempts"] == 4
    assert len(await attempts(stack, exhausted["id"])) == 4  # history kept
    status, body = await api_post(stack, "/api/v1/dead-letters/replay", {})
    assert (status, body["replayed"]) == (200, 1)  # the refused one
    await wait_status(stack, refused["id"], "delivered")
    status, body = await api_post(stack, f"/api/v1/notifications/{exhausted['id']}/replay")
    assert (status, body["code"]) == (409, "illegal_transition")


async def test_an_outage_longer_than_every_backoff_fails_nothing_with_default_retries(stack: Stack) -> None:
    """The breaker opens; its half-open trial calls meet the outage again and again, but a failed trial is
    the breaker's probe, not an attempt: with the default 3 retries and backoff (0.5 + 1 + 2 s) far shorter
    than the outage, nothing fails."""
    await stack.start_sandbox()
    await stack.start_api()  # default retries: normal 3
    await stack.start_worker(**FAST_RETRIES, breaker_fail_max=3, breaker_reset_s=1, worker_concurrency=8)
    await stack.set_sandbox(down=True)
    ids = await post_many(stack, 30)

    async def trials_met_the_outage(at_least: int) -> bool:
        conn = await asyncpg.connect(stack.database_url)
        try:
            trials: int = await conn.fetchval("SELECT count(*) FROM delivery_attempts WHERE breaker_trial")
        finally:
            await conn.close()
        return trials >= at_least

    # Eight failed trials, at one per cooldown (1 s): the outage outlasts any notification's backoff.
    await eventually(lambda: trials_met_the_outage(8), timeout_s=60, what="eight failed breaker trials")
    during = await stack.statuses()
    assert set(during) <= {"pending", "processing", "retrying"}, during
    await stack.set_sandbox(down=False)
    await wait_all_status(stack, 30)
    stats = await stack.sandbox("/stats")
    assert stats["accepted"] == 30
    assert stats["duplicates"] == {}
    ordinary_failures = trial_failures = 0
    for i in ids:
        ledger = await attempts(stack, i)
        counted = [a for a in ledger if not a["breaker_trial"]]
        assert (await stack.get(i))["attempts"] == len({a["attempt"] for a in counted}) <= 1 + 3
        ordinary_failures += sum(1 for a in counted if a["outcome"] == "transient")
        trial_failures += sum(1 for a in ledger if a["breaker_trial"])
    # The breaker kept the calls to the dead gateway to a handful: the ones in flight when it opened (at
    # most the worker's 8 slots plus the 3 that opened it), then one trial per cooldown.
    assert ordinary_failures <= 8 + 3, ordinary_failures
    assert trial_failures >= 8


async def test_primary_down_the_secondary_delivers(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    dead = f"http://127.0.0.1:{free_port()}/send"
    providers = {
        ch: [
            {"name": "primary", "url": dead, "timeout_s": 1},
            {"name": "secondary", "url": f"{stack.sandbox_url}/send"},
        ]
        for ch in ("sms", "email", "push")
    }
    await stack.start_worker(providers=json.dumps(providers), breaker_fail_max=2, breaker_reset_s=30)
    ids = await post_many(stack, 5)
    await wait_all_status(stack, 5)
    for i in ids:
        n = await stack.get(i)
        assert n["provider"] == "secondary"
        assert n["attempts"] == 1
        assert (await attempts(stack, i))[-1]["provider"] == "secondary"
    first = await attempts(stack, ids[0])
    assert [a["provider"] for a in first][-1] == "secondary"
    calls_to_primary = 0
    for i in ids:
        calls_to_primary += sum(1 for a in await attempts(stack, i) if a["provider"] == "primary")
    assert 2 <= calls_to_primary <= 2 + 5  # the breaker opened after two failures (others were in flight)


async def test_429_retry_after_is_honoured(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(retry_base_s=0.1, retry_cap_s=0.2, recovery_interval_s=0.2)
    await stack.set_sandbox(rate_limit_rate=1.0, retry_after_s=2)
    n = await stack.send_sms("slow down")

    async def limited_once() -> bool:
        return len(await attempts(stack, n["id"])) >= 1

    await eventually(limited_once, what="the 429")
    await stack.set_sandbox(rate_limit_rate=0.0)
    await wait_status(stack, n["id"], "delivered")
    ledger = await attempts(stack, n["id"])
    assert ledger[0]["http_status"] == 429
    [retry] = [e for e in await status_events(stack, n["id"]) if e["status"] == "retrying"]
    # Retry-After (2 s) beat the jitter (at most 0.1 s): the retry was due no sooner, and not tried before.
    due = parse(retry["next_attempt_at"])
    assert due >= parse(ledger[0]["finished_at"]) + timedelta(seconds=2)
    assert parse(ledger[1]["started_at"]) >= due


async def test_worker_killed_with_retries_pending_delivers_all_after_restart(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    worker = await stack.start_worker(retry_base_s=2, retry_cap_s=4, recovery_interval_s=0.2)
    await stack.set_sandbox(error_rate=1.0, error_status=503)
    await post_many(stack, 20)

    async def all_retrying() -> bool:
        return (await stack.statuses()).get("retrying", 0) == 20

    await eventually(all_retrying, what="every notification waiting to retry")
    worker.kill()
    await stack.set_sandbox(error_rate=0.0)
    await stack.start_worker("worker-restarted", retry_base_s=2, retry_cap_s=4, recovery_interval_s=0.2)
    await wait_all_status(stack, 20)
    assert (await stack.sandbox("/stats"))["duplicates"] == {}


async def test_scheduled_is_delivered_after_its_time_exactly_once_with_two_workers(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await asyncio.gather(
        stack.start_worker("worker-1", recovery_interval_s=0.1),
        stack.start_worker("worker-2", recovery_interval_s=0.1),
    )
    at = datetime.now(UTC) + timedelta(seconds=2)
    ids = [str((await stack.send_sms(f"later {i}", scheduled_at=iso(at)))["id"]) for i in range(10)]
    assert (await stack.get(ids[0]))["status"] == "scheduled"
    await wait_all_status(stack, 10)
    messages = (await stack.sandbox("/messages"))["messages"]
    assert sorted(m["idempotency_key"] for m in messages) == sorted(ids)
    for m in messages:
        assert parse(m["received_at"]) >= at
    for i in ids:
        assert parse((await stack.get(i))["sent_at"]) >= at


async def test_expired_is_never_sent_and_pause_holds_then_resume_sends_all(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(recovery_interval_s=0.2, pause_refresh_s=0.2)
    status, state = await api_post(stack, "/api/v1/delivery/pause", {"channel": "sms"})
    assert (status, state["channels"]["sms"]["paused"], state["channels"]["email"]["paused"]) == (
        200,
        True,
        False,
    )
    await asyncio.sleep(0.5)  # honoured within a second
    expiring = await stack.send_sms("too late", expires_at=iso(datetime.now(UTC) + timedelta(seconds=2)))
    held = await post_many(stack, 10)
    email = (await stack.post({"channel": "email", "recipient": "a@example.com", "content": "not paused"}))[1]
    await wait_status(stack, email["id"], "delivered")
    await asyncio.sleep(2.5)
    assert (await stack.sandbox("/stats"))["accepted"] == 1  # only the email
    for i in held:
        assert (await stack.get(i))["status"] == "pending"
    status, state = await api_post(stack, "/api/v1/delivery/resume")
    assert (status, state["paused"], state["channels"]["sms"]["paused"]) == (200, False, False)
    for i in held:
        await wait_status(stack, i, "delivered")
    await wait_status(stack, expiring["id"], "expired")
    keys = {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]}
    assert expiring["id"] not in keys
    assert keys == {*held, email["id"]}


async def test_cancel_racing_delivery_never_sends_a_cancelled_notification(stack: Stack) -> None:
    await stack.start_sandbox("--latency-ms", "5")
    await stack.start_api()
    await stack.start_worker(worker_concurrency=16)
    rng = random.Random(42)
    cancelled: set[str] = set()
    refused: set[str] = set()

    async def post_then_cancel(i: int) -> None:
        n = await stack.send_sms(f"race {i}")
        await asyncio.sleep(rng.uniform(0, 0.06))
        status, body = await stack.cancel(n["id"])
        if status == 200:
            cancelled.add(n["id"])
        else:
            assert (status, body["code"]) == (409, "illegal_transition"), body
            refused.add(n["id"])

    gate = asyncio.Semaphore(20)

    async def bounded(i: int) -> None:
        async with gate:
            await post_then_cancel(i)

    await asyncio.gather(*(bounded(i) for i in range(300)))
    assert cancelled and refused, (len(cancelled), len(refused))  # the race really happened both ways

    async def settled() -> bool:
        s = await stack.statuses()
        return s.get("pending", 0) + s.get("processing", 0) == 0

    await eventually(settled, timeout_s=60, what="every notification settled")

    async def cancelled_records_read() -> bool:
        # A cancelled notification's record is still read later (it was never claimed): wait until the worker
        # has read and dropped one record per cancelled notification before checking that none was sent.
        return await rounds(stack, "worker", "skipped") >= len(cancelled)

    await eventually(
        cancelled_records_read, timeout_s=30, what="every cancelled notification's record skipped"
    )
    sent = {m["idempotency_key"] for m in (await stack.sandbox("/messages"))["messages"]}
    assert not (sent & cancelled)
    assert sent == refused


async def test_a_backlog_waiting_behind_consumer_lag_is_not_enqueued_twice(stack: Stack) -> None:
    """Pending for longer than NOTIFY_STALE_PENDING_S only because the worker is busy: its record is still in
    its partition, so the sweep leaves it alone (every duplicate record would cost every worker a read)."""
    await stack.start_sandbox("--latency-ms", "50")
    await stack.start_api()
    ids = await post_many(stack, 300)
    await stack.start_worker(worker_concurrency=4, stale_pending_s=2, recovery_interval_s=0.2)
    await wait_all_status(stack, 300, timeout_s=120)  # 300 at 4 x 20/s: several times the stale threshold
    conn = await asyncpg.connect(stack.database_url)
    try:
        records = await conn.fetchval("SELECT count(*) FROM outbox WHERE kind = 'dispatch'")
        oldest_wait = await conn.fetchval(
            "SELECT max(sent_at - created_at) FROM notifications WHERE id = ANY($1::uuid[])",
            [UUID(i) for i in ids],
        )
    finally:
        await conn.close()
    assert oldest_wait > timedelta(seconds=2), "the backlog never outlasted the stale threshold"
    assert records == 300  # one dispatch record each: nothing was re-enqueued
    assert (await stack.sandbox("/stats"))["duplicates"] == {}
