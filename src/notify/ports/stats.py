"""Delivery statistics: counters kept per tenant, channel and minute as notifications reach an outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notify.domain.model import Channel


@dataclass(frozen=True, slots=True)
class ChannelFigures:
    """One channel's raw figures: outcomes since a time, and what waits to be sent now.

    ``latency_hist`` has one count per bucket of ``notify.domain.stats.LATENCY_BOUNDS_MS`` plus the overflow
    bucket; it and ``latency_sum_ms`` cover the delivered notifications only.
    """

    sent: int
    failed: int
    latency_sum_ms: float
    latency_hist: tuple[int, ...]
    queue_depth: int


class DeliveryStats(Protocol):
    async def figures(self, tenant_id: str, since: datetime) -> dict[Channel, ChannelFigures]:
        """Every channel's figures for ``tenant_id``: outcomes counted in the minutes starting at or after
        ``since`` (a whole minute), and the notifications pending, processing or retrying now."""
        ...

    async def purge(self, older_than: datetime) -> int:
        """Delete the counters of minutes before ``older_than``; returns how many rows went."""
        ...
