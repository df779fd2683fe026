"""Delivery metrics per channel for a tenant (GET /api/v1/metrics), and the retention of their counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from notify.domain.model import Channel
from notify.domain.stats import average, percentile, success_rate
from notify.ports.clock import Clock
from notify.ports.stats import ChannelFigures, DeliveryStats

DEFAULT_RETENTION = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class ChannelMetrics:
    sent: int
    failed: int
    avg_latency_ms: float | None  # None: nothing delivered in the window
    p95_latency_ms: float | None
    success_rate: float | None  # sent / (sent + failed); None: no outcome in the window
    queue_depth: int  # pending, processing or retrying now


@dataclass(frozen=True, slots=True)
class Metrics:
    window_s: int
    since: datetime  # the window's start: now - window_s, rounded down to the whole minute
    channels: dict[Channel, ChannelMetrics]


def _minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def channel_metrics(f: ChannelFigures) -> ChannelMetrics:
    return ChannelMetrics(
        sent=f.sent,
        failed=f.failed,
        avg_latency_ms=average(f.latency_sum_ms, f.sent),
        p95_latency_ms=percentile(f.latency_hist, 0.95),
        success_rate=success_rate(f.sent, f.failed),
        queue_depth=f.queue_depth,
    )


class StatsService:
    def __init__(
        self, stats: DeliveryStats, clock: Clock, *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._retention = retention

    @property
    def retention(self) -> timedelta:
        return self._retention

    async def metrics(self, tenant_id: str, window_s: int) -> Metrics:
        """Outcomes counted per minute, so the window starts on a whole minute: at most 59 s more than
        ``window_s`` is covered (the minute now running included)."""
        since = _minute_floor(self._clock.now() - timedelta(seconds=window_s))
        figures = await self._stats.figures(tenant_id, since)
        channels = {
            c: channel_metrics(figures[c]) if c in figures else ChannelMetrics(0, 0, None, None, None, 0)
            for c in Channel
        }
        return Metrics(window_s, since, channels)

    async def purge_expired(self) -> int:
        """Delete the counters older than the retention; returns how many rows went. Run it periodically
        (hourly is plenty): the counters of one minute are a few rows per tenant and channel."""
        return await self._stats.purge(_minute_floor(self._clock.now() - self._retention))
