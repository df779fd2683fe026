"""``Authorization: Bearer <key>`` on every ``/api/v1`` route, and a token bucket per API key."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol
from uuid import UUID

from aiohttp import web
from aiolimiter import AsyncLimiter

from notify.adapters.cluster_limits import LeasedTokens
from notify.domain.errors import RateLimited
from notify.domain.keys import ApiKey

API_KEY = web.RequestKey("api_key", ApiKey)
PROTECTED_PREFIX = "/api/v1/"  # health, readiness, /metrics, /docs and /openapi.json stay open


class KeyLimiter(Protocol):
    async def admit(self, key: ApiKey) -> None:
        """Return if ``key`` may make one more request now, else raise ``RateLimited``."""
        ...


def _refused(rate: float) -> RateLimited:
    return RateLimited(f"This API key is limited to {rate:g} requests per second.", 1.0 / rate, rate)


class KeyRateLimiter:
    """One bucket per key (its own rate, or the default) in this process, holding one second's worth of
    requests: N API replicas admit N times the rate (``NOTIFY_RATE_LIMIT_SCOPE=process``)."""

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
            raise _refused(rate)
        await limiter.acquire()  # has capacity: returns at once


class SharedKeyRateLimiter:
    """One bucket per key shared by every API replica (``NOTIFY_RATE_LIMIT_SCOPE=cluster``)."""

    def __init__(self, tokens: LeasedTokens, default_rate_per_s: float) -> None:
        self._tokens = tokens
        self._default = default_rate_per_s

    async def admit(self, key: ApiKey) -> None:
        rate = key.rate_limit_per_s or self._default
        if not await self._tokens.try_acquire(f"api-key:{key.id}", rate):
            raise _refused(rate)


class FailedAuthLimiter:
    """Per client address, a budget of failed authentications (``rate_per_s``, up to ``burst`` at once):
    past it the client gets 429 before any lookup, so guessing keys costs the database nothing more.
    Addresses are remembered in a bounded table (least recently seen dropped first). A rate of 0 is no
    limit."""

    def __init__(self, rate_per_s: float = 5.0, burst: float = 20.0, max_clients: int = 10_000) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._max = max_clients
        self._spent: OrderedDict[str, tuple[float, float]] = OrderedDict()  # peer -> (debt, at)

    def _debt(self, peer: str, now: float) -> float:
        debt, at = self._spent.get(peer, (0.0, now))
        return max(0.0, debt - (now - at) * self._rate)

    def check(self, peer: str) -> None:
        if self._rate and self._debt(peer, time.monotonic()) >= self._burst:
            raise RateLimited("Too many failed authentications from this address.", 1.0 / self._rate)

    def failed(self, peer: str) -> None:
        if not self._rate:
            return
        now = time.monotonic()
        self._spent[peer] = (self._debt(peer, now) + 1.0, now)
        self._spent.move_to_end(peer)
        while len(self._spent) > self._max:
            self._spent.popitem(last=False)


def tenant_of(request: web.Request) -> str:
    key = request[API_KEY]
    return key.tenant_id
