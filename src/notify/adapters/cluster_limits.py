"""Rate limits that hold for a whole deployment: token buckets shared through ``TokenBuckets`` (PostgreSQL),
taken a slice at a time.

A process-local bucket (aiolimiter, :class:`notify.adapters.resilience.ChannelRateLimiter`) lets N worker
processes send N times the configured rate. Here every process draws from one shared bucket per limit, but
not once per message: it takes ``lease_s`` seconds' worth of tokens per call and spends them locally. What a
process took and has not spent within ``keep_s`` is dropped, so a quiet process cannot save tokens up and
burst past the rate later; dropping errs towards sending less, never more.

Over any window of T seconds the deployment sends at most ``rate * T + capacity`` plus what the processes
hold (at most one slice each), and, while it has work, no less than what the bucket refills minus the slices
dropped. With the defaults (slices of 0.1 s, a burst of 0.2 s) that is within a few percent of the rate over
windows of ten seconds and more.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from notify.ports.resilience import TokenBuckets

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slice:
    tokens: int = 0
    usable_until: float = 0.0
    ask_after: float = 0.0  # the shared bucket will not hold a full slice before this: do not ask earlier
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedTokens:
    """Tokens from shared buckets, a slice per round trip. One instance per process and event loop."""

    def __init__(
        self,
        buckets: TokenBuckets,
        *,
        lease_s: float = 0.1,
        burst_s: float = 0.2,
        keep_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_s <= 0 or burst_s <= 0:
            raise ValueError("lease_s and burst_s must be positive")
        self._buckets = buckets
        self._lease_s = lease_s
        self._burst_s = burst_s
        self._keep_s = keep_s if keep_s is not None else 2 * lease_s
        self._clock = clock
        self._slices: dict[str, _Slice] = {}
        self._failing: set[str] = set()

    def _unavailable(self, name: str, exc: Exception, doing: str) -> None:
        if name not in self._failing:  # once per outage, not once per retry
            self._failing.add(name)
            log.warning("shared rate limit %s cannot be read (%s); %s until it can", name, exc, doing)

    def _available(self, name: str) -> None:
        if name in self._failing:
            self._failing.discard(name)
            log.info("shared rate limit %s readable again", name)

    def _shape(self, rate: float) -> tuple[float, int]:
        """The bucket's capacity (a burst's worth, at least one token) and the slice one call asks for."""
        capacity = max(1.0, rate * self._burst_s)
        return capacity, max(1, min(int(capacity), round(rate * self._lease_s)))

    def _spend(self, held: _Slice) -> bool:
        if held.tokens and self._clock() < held.usable_until:
            held.tokens -= 1
            return True
        held.tokens = 0
        return False

    async def _refill(self, name: str, rate: float, held: _Slice) -> None:
        """Take a slice into ``held``, and learn when the next one will be there."""
        capacity, want = self._shape(rate)
        grant = await self._buckets.take(name, rate, capacity, want)
        now = self._clock()
        held.tokens = grant.tokens
        held.usable_until = now + self._keep_s
        held.ask_after = now + grant.wait_s

    async def acquire(self, name: str, rate: float) -> float:
        """Wait for one token of ``name``'s shared bucket (``rate`` per second); the seconds waited. Waiters
        in one process queue on a lock: they share its slices in arrival order and ask the database once."""
        held = self._slices.setdefault(name, _Slice())
        if self._spend(held):
            return 0.0
        started = self._clock()
        async with held.lock:
            while not self._spend(held):
                pause = held.ask_after - self._clock()
                if pause <= 0:
                    try:
                        await self._refill(name, rate, held)
                    except Exception as exc:  # the database is away (any driver error): wait, do not send
                        self._unavailable(name, exc, "waiting")
                        pause = self._lease_s
                    else:
                        self._available(name)
                        continue
                # Jittered, so processes that found the bucket empty together do not come back together
                # (the first one back would take every slice, the same one each time).
                await asyncio.sleep(pause * random.uniform(1.0, 1.5))
        return self._clock() - started

    async def try_acquire(self, name: str, rate: float) -> bool:
        """One token now, or ``False`` at once (an API answering 429). Until the shared bucket can hold a
        slice again, refusals come from memory, so a flood costs no round trips. When the database cannot be
        asked, the request is let through: it needs the database anyway."""
        held = self._slices.setdefault(name, _Slice())
        if self._spend(held):
            return True
        if self._clock() < held.ask_after:
            return False
        async with held.lock:
            if self._spend(held):
                return True
            try:
                await self._refill(name, rate, held)
            except Exception as exc:  # fail open, see above
                self._unavailable(name, exc, "admitting")
                return True
            self._available(name)
            return self._spend(held)


class ClusterRateLimiter:
    """A :class:`notify.ports.resilience.RateLimiter` per channel whose rates hold for every worker together.
    ``rates_per_s`` as for ``ChannelRateLimiter``: a key with no rate (``None``, 0, absent) is unlimited."""

    def __init__(self, tokens: LeasedTokens, rates_per_s: Mapping[str, float | None], prefix: str) -> None:
        self._tokens = tokens
        self._rates = {key: rate for key, rate in rates_per_s.items() if rate}
        self._prefix = prefix

    async def acquire(self, key: str) -> float:
        rate = self._rates.get(key)
        if rate is None:
            return 0.0
        return await self._tokens.acquire(f"{self._prefix}{key}", rate)
