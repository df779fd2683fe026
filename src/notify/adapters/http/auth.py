"""``Authorization: Bearer <key>`` on every ``/api/v1`` route, and a token bucket per API key."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from aiolimiter import AsyncLimiter

from notify.domain.errors import RateLimited
from notify.domain.keys import ApiKey

API_KEY = web.RequestKey("api_key", ApiKey)
PROTECTED_PREFIX = "/api/v1/"  # health, readiness, /metrics, /docs and /openapi.json stay open


class KeyRateLimiter:
    """One bucket per key (its own rate, or the default), holding one second's worth of requests."""

    def __init__(self, default_rate_per_s: float) -> None:
        self._default = default_rate_per_s
        self._buckets: dict[UUID, tuple[float, AsyncLimiter]] = {}

    async def admit(self, key: ApiKey) -> None:
        rate = key.rate_limit_per_s or self._default
        bucket = self._buckets.get(key.id)
        if bucket is None or bucket[0] != rate:
            bucket = (rate, AsyncLimiter(max_rate=max(1.0, rate), time_period=max(1.0, rate) / rate))
            self._buckets[key.id] = bucket
        limiter = bucket[1]
        if not limiter.has_capacity():
            raise RateLimited(f"This API key is limited to {rate:g} requests per second.", 1.0 / rate)
        await limiter.acquire()  # has capacity: returns at once


def tenant_of(request: web.Request) -> str:
    key = request[API_KEY]
    return key.tenant_id
