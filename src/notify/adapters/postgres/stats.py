"""DeliveryStats on PostgreSQL: reads the ``delivery_stats`` counters that the trigger of migration 0006
keeps (in the transaction of each change to delivered or failed), so no read scans notifications for
outcomes; the queue depth is counted through the ``notifications_tenant_status`` index."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from notify.domain.model import Channel
from notify.domain.stats import LATENCY_BOUNDS_MS
from notify.ports.stats import ChannelFigures

_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
_HIST_SUMS = ", ".join(f"sum(latency_hist[{k}])" for k in range(1, _BUCKETS + 1))

# One statement, so the outcomes and the queue depth come from one snapshot. The window is one range of the
# primary key (tenant_id, minute, ...). The histograms are summed bucket by bucket in the same pass as the
# counters (much faster than unnesting them: a 7-day window of a tenant busy every minute on every channel
# is 120 000 rows); cardinality() lets the reader check that the table has the buckets it expects.
_FIGURES = f"""
WITH outcomes AS (
    SELECT channel, sum(sent)::bigint AS sent, sum(failed)::bigint AS failed,
           sum(latency_sum_ms) AS latency_sum_ms,
           ARRAY[{_HIST_SUMS}]::bigint[] AS latency_hist,
           max(cardinality(latency_hist)) AS buckets
      FROM delivery_stats
     WHERE tenant_id = $1 AND minute >= $2
     GROUP BY channel
),
queued AS (
    SELECT channel, count(*) AS queue_depth
      FROM notifications
     WHERE tenant_id = $1 AND status IN ('pending', 'processing', 'retrying')
     GROUP BY channel
)
SELECT c.channel,
       coalesce(o.sent, 0) AS sent,
       coalesce(o.failed, 0) AS failed,
       coalesce(o.latency_sum_ms, 0) AS latency_sum_ms,
       o.latency_hist,
       o.buckets,
       coalesce(q.queue_depth, 0) AS queue_depth
  FROM unnest($3::text[]) AS c(channel)
  LEFT JOIN outcomes o USING (channel)
  LEFT JOIN queued q USING (channel)
"""


class PgDeliveryStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def figures(self, tenant_id: str, since: datetime) -> dict[Channel, ChannelFigures]:
        rows = await self._pool.fetch(_FIGURES, tenant_id, since, [c.value for c in Channel])
        out: dict[Channel, ChannelFigures] = {}
        for r in rows:
            if r["buckets"] not in (None, _BUCKETS):
                # The SQL bounds and LATENCY_BOUNDS_MS disagree: refuse rather than misread the buckets.
                raise RuntimeError(
                    f"delivery_stats histograms have {r['buckets']} buckets, "
                    f"LATENCY_BOUNDS_MS implies {_BUCKETS}"
                )
            hist = tuple(r["latency_hist"]) if r["latency_hist"] is not None else (0,) * _BUCKETS
            out[Channel(r["channel"])] = ChannelFigures(
                sent=r["sent"],
                failed=r["failed"],
                latency_sum_ms=float(r["latency_sum_ms"]),
                latency_hist=hist,
                queue_depth=r["queue_depth"],
            )
        return out

    async def purge(self, older_than: datetime) -> int:
        status: str = await self._pool.execute("DELETE FROM delivery_stats WHERE minute < $1", older_than)
        return int(status.rsplit(" ", 1)[-1])
