"""A channel's tokens go to the highest priority waiting.

At a provider's rate limit the worker's slots fill with deliveries waiting for the channel's next token. A
token bucket hands tokens out in arrival order, so a high-priority notification that gets a slot (the
dispatcher keeps some for it) would still wait behind every low one already queued for the channel: seconds
at a low rate. Here a caller that finds nobody waiting asks the bucket itself (no extra step while the bucket
has tokens); callers that find a queue wait in it, and one hand-out task per key asks the bucket on their
behalf and gives each token to the highest priority waiting, in arrival order within a priority. Tokens the
bucket has at once are handed out together, so the queue costs no throughput. The bucket decides when, this
decides who.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from itertools import count

from notify.domain.model import Priority
from notify.ports.resilience import RateLimiter


class PriorityRateLimiter:
    """Wraps a :class:`RateLimiter`; one per event loop."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._asking: set[str] = set()  # keys a caller is asking the bucket for directly
        self._queues: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._handing_out: dict[str, asyncio.Task[None]] = {}
        self._arrivals = count()

    async def acquire(self, key: str, priority: Priority) -> float:
        """Wait for one token of ``key``; the seconds waited."""
        if key not in self._asking and not self._waiting(key):
            self._asking.add(key)
            try:
                return await self._limiter.acquire(key)
            finally:
                self._asking.discard(key)
        started = time.monotonic()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queues.setdefault(key, []), (priority.rank, next(self._arrivals), turn))
        if key not in self._handing_out:
            self._handing_out[key] = asyncio.get_running_loop().create_task(self._hand_out(key))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._give(key)  # it was handed a token as it was cancelled: the next one gets it
            raise
        return time.monotonic() - started

    def _waiting(self, key: str) -> bool:
        """Whether anyone still waits for ``key`` (callers that gave up are dropped from the front)."""
        queue = self._queues.get(key)
        while queue and queue[0][2].done():
            heapq.heappop(queue)
        return bool(queue)

    def _give(self, key: str) -> None:
        """The next token to the first caller waiting; none waiting: it is dropped (sending less, never
        more)."""
        if self._waiting(key):
            _, _, turn = heapq.heappop(self._queues[key])
            turn.set_result(None)

    async def _hand_out(self, key: str) -> None:
        try:
            while self._waiting(key):
                await self._limiter.acquire(key)
                self._give(key)
        except Exception as exc:  # the bucket failed: every caller waiting hears it, as a direct one would
            while self._waiting(key):
                _, _, turn = heapq.heappop(self._queues[key])
                turn.set_exception(exc)
        finally:
            del self._handing_out[key]
