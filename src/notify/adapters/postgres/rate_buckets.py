"""``TokenBuckets`` on PostgreSQL (migration 0017): one row per bucket, refilled and taken in one call."""

from __future__ import annotations

import asyncpg

from notify.ports.resilience import Grant


class PgTokenBuckets:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, name: str, rate_per_s: float, capacity: float, want: int) -> Grant:
        row = await self._pool.fetchrow(
            "SELECT granted, wait_s FROM take_rate_tokens($1, $2, $3, $4)", name, rate_per_s, capacity, want
        )
        assert row is not None  # the function always returns one row
        return Grant(row["granted"], max(0.0, row["wait_s"]))
