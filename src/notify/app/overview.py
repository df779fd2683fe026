"""The operator's overview: figures for the console's activity and delivery pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from notify.domain.model import Channel, Status
from notify.ports.clock import Clock
from notify.ports.overview import BatchProgress, MinuteOutcomes, Overview, ProviderHealth, WorkerReport

COUNTS_WINDOW = timedelta(hours=24)  # counts per status cover the notifications created this recently
CHART_WINDOW = timedelta(hours=1)
HEALTH_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ChannelSeries:
    """One channel's delivered and failed per minute over the chart window, one entry per minute (oldest
    first), zeros included."""

    channel: Channel
    minutes: list[datetime]
    delivered: list[int]
    failed: list[int]

    @property
    def peak(self) -> int:
        return max([*self.delivered, *self.failed, 0])


@dataclass(frozen=True, slots=True)
class Activity:
    counts: dict[Status, int]
    series: list[ChannelSeries]
    unpublished: int
    lag: int | None  # records the workers have not consumed yet; None: no worker reported lately
    workers: int


@dataclass(frozen=True, slots=True)
class DeliveryHealth:
    providers: list[ProviderHealth]
    workers: list[WorkerReport]

    @property
    def breakers(self) -> dict[str, dict[str, str]]:
        """breaker -> worker -> state: what every live worker says of each breaker."""
        out: dict[str, dict[str, str]] = {}
        for report in self.workers:
            for name, state in report.breakers.items():
                out.setdefault(name, {})[report.worker_id] = state
        return dict(sorted(out.items()))

    @property
    def rate_limits(self) -> dict[str, float | None]:
        """channel -> messages/s per worker process (the workers share one configuration)."""
        limits: dict[str, float | None] = {}
        for report in self.workers:
            limits.update(report.rate_limits)
        return limits


def _series(rows: list[MinuteOutcomes], start: datetime, minutes: int) -> list[ChannelSeries]:
    axis = [start + timedelta(minutes=i) for i in range(minutes)]
    index = {m: i for i, m in enumerate(axis)}
    out: list[ChannelSeries] = []
    for channel in Channel:
        delivered, failed = [0] * minutes, [0] * minutes
        for row in rows:
            i = index.get(row.minute)
            if row.channel is channel and i is not None:
                delivered[i] += row.delivered
                failed[i] += row.failed
        out.append(ChannelSeries(channel, axis, delivered, failed))
    return out


class OverviewService:
    def __init__(self, overview: Overview, clock: Clock, *, report_interval_s: float) -> None:
        self._overview = overview
        self._clock = clock
        # A worker that has not reported for three intervals is gone (or stuck): its figures are stale.
        self._fresh = timedelta(seconds=3 * report_interval_s + 1)

    async def activity(self, tenant_id: str | None) -> Activity:
        now = self._clock.now()
        start = now.replace(second=0, microsecond=0) - CHART_WINDOW + timedelta(minutes=1)
        minutes = int(CHART_WINDOW / timedelta(minutes=1))
        counts = await self._overview.status_counts(tenant_id, now - COUNTS_WINDOW)
        rows = await self._overview.outcomes_per_minute(tenant_id, start)
        unpublished = await self._overview.unpublished_outbox()
        reports = await self._overview.worker_reports(now - self._fresh)
        lag = sum(sum(r.lag.values()) for r in reports) if reports else None
        return Activity(counts, _series(rows, start, minutes), unpublished, lag, len(reports))

    async def delivery(self, tenant_id: str | None) -> DeliveryHealth:
        now = self._clock.now()
        return DeliveryHealth(
            await self._overview.provider_health(tenant_id, now - HEALTH_WINDOW),
            await self._overview.worker_reports(now - self._fresh),
        )

    async def batches(self, tenant_id: str | None, limit: int = 50) -> list[BatchProgress]:
        return await self._overview.recent_batches(tenant_id, limit)

    async def tenants(self) -> list[str]:
        return await self._overview.tenants()
