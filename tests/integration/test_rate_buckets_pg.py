"""Shared token buckets on a real PostgreSQL (migration 0017): concurrent callers never get more than the
bucket holds, and three "processes" (a pool each) drawing as fast as they can get the configured rate
between them, in slices (few round trips). Real processes against a real provider sandbox and two API
replicas: tests/e2e/test_cluster_limits.py."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from notify.adapters.cluster_limits import LeasedTokens
from notify.adapters.postgres.pool import create_pool
from notify.adapters.postgres.rate_buckets import PgTokenBuckets
from notify.ports.resilience import Grant


class CountingBuckets:
    """Counts the round trips the real buckets are asked for."""

    def __init__(self, buckets: PgTokenBuckets) -> None:
        self._buckets = buckets
        self.calls = 0

    async def take(self, name: str, rate_per_s: float, capacity: float, want: int) -> Grant:
        self.calls += 1
        return await self._buckets.take(name, rate_per_s, capacity, want)


async def test_concurrent_takes_never_grant_more_than_the_bucket_holds(pool: asyncpg.Pool) -> None:
    buckets = PgTokenBuckets(pool)
    # A bucket of 5 that refills once a week: 8 connections asking for 2 at the same moment share 5.
    grants = await asyncio.gather(*(buckets.take("b", 1e-6, 5.0, 2) for _ in range(8)))
    assert sum(g.tokens for g in grants) == 5
    empty = [g for g in grants if not g.tokens]
    assert empty and all(g.wait_s > 1000 for g in empty)  # it says how long until a slice is there
    assert (await buckets.take("other", 1e-6, 5.0, 2)).tokens == 2  # buckets are independent


async def test_three_processes_together_get_the_configured_rate_in_slices(database_url: str) -> None:
    rate, seconds = 200.0, 3.0
    pools = [await create_pool(database_url, min_size=1, max_size=2) for _ in range(3)]
    counters = [CountingBuckets(PgTokenBuckets(p)) for p in pools]
    got = [0, 0, 0]

    async def draw(i: int, until: float) -> None:
        tokens = LeasedTokens(counters[i], lease_s=0.1, burst_s=0.2)
        while time.monotonic() < until:
            await tokens.acquire("channel:sms", rate)
            got[i] += 1

    try:
        until = time.monotonic() + seconds
        await asyncio.gather(*(draw(i, until) for i in range(3)))
    finally:
        for p in pools:
            await p.close()
    total = sum(got)
    # At most the refill plus the initial burst (40) plus a slice (20) each process may hold; at least the
    # refill less what a process drops (it drops nothing while it keeps drawing).
    assert rate * seconds * 0.9 <= total <= rate * seconds + 40 + 3 * 20 + 3, got
    assert all(n > rate * seconds / 10 for n in got), got  # every process got a share
    calls = sum(c.calls for c in counters)
    assert calls < total / 4, (calls, total)  # slices of 20: far fewer round trips than tokens
