"""Resilience ports: circuit breakers and rate limiters the worker wraps provider calls in.

The application only sees these protocols; the adapters (``notify.adapters.resilience``) build them on
aiobreaker and aiolimiter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")


class CircuitBreaker(Protocol):
    """Guards calls to one provider (or one channel): stops calling it while it keeps failing."""

    name: str

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (an open breaker whose cooldown is over)."""
        ...

    def retry_after_s(self) -> float:
        """Seconds until a call may be tried again: 0 when closed or when a half-open trial is available."""
        ...

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` under the breaker.

        While open (cooldown not over), or half-open with every trial slot taken, raises ``CircuitOpen``
        (its message names the breaker, ``retry_after_s`` is set) without calling ``fn``. Only retriable
        errors (``exc.retriable`` is true, i.e. ``TransientProviderError``) count as failures; any other
        exception propagates unchanged and counts as a success (the provider answered). A half-open trial
        call that fails transiently raises ``TrialCallFailed`` (caused by the provider's error): the call was
        made, but it was the breaker's probe, and it must not use up the notification's retries.
        """
        ...


class RateLimiter(Protocol):
    """Per-key token buckets; waiting on one key never delays another."""

    async def acquire(self, key: str) -> float:
        """Wait for one token of ``key``'s bucket; return the seconds waited."""
        ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What a shared bucket gave: ``tokens`` whole tokens, and ``wait_s`` until another full slice will be
    there if nobody else takes any (asking before then can only get less)."""

    tokens: int
    wait_s: float = 0.0


class TokenBuckets(Protocol):
    """Token buckets shared by every process of a deployment (so a rate holds for the cluster)."""

    async def take(self, name: str, rate_per_s: float, capacity: float, want: int) -> Grant:
        """Refill ``name``'s bucket at ``rate_per_s`` up to ``capacity`` and take up to ``want`` tokens."""
        ...
