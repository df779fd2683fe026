"""Retry policy: how many retries a notification gets after its first attempt, and how long each waits.

Delays use full jitter (``random(0, min(cap, base * 2**retry))``), which spreads a burst of failures out
instead of having them all come back at once; a provider's ``Retry-After`` wins when it is longer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from notify.domain.model import Priority

DEFAULT_MAX_RETRIES: Mapping[Priority, int] = MappingProxyType(
    {Priority.HIGH: 5, Priority.NORMAL: 3, Priority.LOW: 2}
)


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0
    cap_s: float = 300.0
    max_retries: Mapping[Priority, int] = field(default_factory=lambda: DEFAULT_MAX_RETRIES)
    # A provider's Retry-After is honoured up to this; a larger (or absurd) one is cut to it.
    max_retry_after_s: float = 3600.0

    def ceiling_s(self, retry: int) -> float:
        """The upper bound of the jittered delay before retry number ``retry`` (0 = the first retry)."""
        return min(self.cap_s, self.base_s * 2.0**retry)

    def delay_s(
        self, retry: int, retry_after_s: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        jittered = float(rand()) * self.ceiling_s(retry)
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > jittered:
            return min(retry_after_s, self.max_retry_after_s)
        if retry_after_s is not None and not math.isfinite(retry_after_s) and retry_after_s > 0:
            return self.max_retry_after_s
        return jittered


def attempts_left(attempts_made: int, max_retries: int) -> int:
    """How many more attempts a notification may have: one first attempt plus ``max_retries`` retries."""
    return max(0, 1 + max_retries - attempts_made)
