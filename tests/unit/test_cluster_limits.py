"""Shared rate limits taken in slices (LeasedTokens) against in-memory shared buckets: how many round trips,
what a process may keep, what it does when the database is away. The same against PostgreSQL, and with
several real processes, is in tests/integration/test_rate_buckets_pg.py and tests/e2e/test_cluster_limits.py.
"""

from __future__ import annotations

import asyncio

import pytest

from notify.adapters.cluster_limits import ClusterRateLimiter, LeasedTokens
from tests.fakes import FakeTokenBuckets


def leased(buckets: FakeTokenBuckets, **kwargs: float) -> LeasedTokens:
    return LeasedTokens(buckets, clock=lambda: buckets.now, **kwargs)


async def test_a_process_takes_a_slice_per_round_trip_not_a_token() -> None:
    buckets = FakeTokenBuckets()
    tokens = leased(buckets, lease_s=0.1, burst_s=0.2)
    for _ in range(10):
        assert await tokens.try_acquire("channel:sms", 100.0)
    # 100/s: slices of 10 tokens from a bucket of 20; ten requests, one call
    assert buckets.calls == [("channel:sms", 100.0, 20.0, 10)]
    assert await tokens.try_acquire("channel:sms", 100.0)
    assert len(buckets.calls) == 2


async def test_an_empty_bucket_refuses_from_memory_until_a_slice_could_be_there() -> None:
    buckets = FakeTokenBuckets()
    tokens = leased(buckets, lease_s=0.1, burst_s=0.1)
    admitted = [await tokens.try_acquire("api-key:k", 10.0) for _ in range(5)]
    assert admitted == [True, False, False, False, False]  # a bucket of one token at 10/s
    assert len(buckets.calls) == 1  # the bucket said when it would hold a token again: nobody asked before
    buckets.now += 0.1
    assert await tokens.try_acquire("api-key:k", 10.0)


async def test_tokens_a_process_did_not_spend_in_time_are_dropped_not_saved_up() -> None:
    buckets = FakeTokenBuckets()
    tokens = leased(buckets, lease_s=0.1, burst_s=0.2, keep_s=0.2)
    assert await tokens.try_acquire("channel:sms", 100.0)  # holds 9 more
    buckets.now += 10.0  # a quiet minute: the shared bucket refills to its capacity, no more
    for _ in range(20):
        assert await tokens.try_acquire("channel:sms", 100.0)
    assert not await tokens.try_acquire("channel:sms", 100.0)  # 20 = capacity; the 9 held were dropped


async def test_acquire_waits_for_the_shared_bucket_and_says_how_long() -> None:
    buckets = FakeTokenBuckets()
    tokens = leased(buckets, lease_s=0.1, burst_s=0.1)

    async def tick() -> None:  # the fake clock moves on while acquire sleeps
        while True:
            await asyncio.sleep(0.001)
            buckets.now += 0.01

    clock = asyncio.create_task(tick())
    try:
        assert await tokens.acquire("channel:push", 20.0) == 0.0  # the first two are there at once
        assert await tokens.acquire("channel:push", 20.0) == 0.0
        waited = await asyncio.wait_for(tokens.acquire("channel:push", 20.0), timeout=5)
    finally:
        clock.cancel()
    assert waited > 0
    assert all(call[3] == 2 for call in buckets.calls)  # slices of 0.1 s at 20/s


async def test_when_the_database_is_away_requests_are_admitted_and_sends_wait() -> None:
    buckets = FakeTokenBuckets()
    buckets.failing = ConnectionRefusedError("database away")
    tokens = LeasedTokens(buckets, lease_s=0.01)  # on the real clock: the wait is measured
    assert await tokens.try_acquire("api-key:k", 5.0)  # the request needs the database anyway
    sending = asyncio.create_task(tokens.acquire("channel:sms", 5.0))
    await asyncio.sleep(0.05)
    assert not sending.done()  # never sends past a limit it cannot check
    buckets.failing = None
    assert await asyncio.wait_for(sending, timeout=5) > 0


async def test_channels_without_a_rate_never_ask() -> None:
    buckets = FakeTokenBuckets()
    limiter = ClusterRateLimiter(leased(buckets), {"sms": 50.0, "email": None, "push": 0}, prefix="channel:")
    assert await limiter.acquire("email") == 0.0
    assert await limiter.acquire("push") == 0.0
    assert buckets.calls == []
    await limiter.acquire("sms")
    assert [c[0] for c in buckets.calls] == ["channel:sms"]


def test_slices_and_bursts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LeasedTokens(FakeTokenBuckets(), lease_s=0)
