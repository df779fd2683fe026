"""The operator's overview (``ports.overview``) and the workers' own reports, on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from notify.domain.ids import lowest_id_at
from notify.domain.model import Batch, Channel, Status
from notify.ports.overview import BatchProgress, MinuteOutcomes, ProviderHealth, WorkerReport


def _tenant_clause(tenant_id: str | None, args: list[Any], column: str = "tenant_id") -> str:
    if tenant_id is None:
        return "true"
    args.append(tenant_id)
    return f"{column} = ${len(args)}"


class PgOverview:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def status_counts(self, tenant_id: str | None, since: datetime) -> dict[Status, int]:
        args: list[Any] = [lowest_id_at(since)]
        rows = await self._pool.fetch(
            f"SELECT status, count(*) AS n FROM notifications "
            f"WHERE id >= $1 AND {_tenant_clause(tenant_id, args)} GROUP BY status",
            *args,
        )
        return {Status(r["status"]): r["n"] for r in rows}

    async def outcomes_per_minute(self, tenant_id: str | None, since: datetime) -> list[MinuteOutcomes]:
        args: list[Any] = [since]
        rows = await self._pool.fetch(
            f"""SELECT minute, channel, sum(sent)::bigint AS delivered, sum(failed)::bigint AS failed
                  FROM delivery_stats WHERE minute >= $1 AND {_tenant_clause(tenant_id, args)}
                 GROUP BY minute, channel ORDER BY minute, channel""",
            *args,
        )
        return [MinuteOutcomes(r["minute"], Channel(r["channel"]), r["delivered"], r["failed"]) for r in rows]

    async def recent_batches(self, tenant_id: str | None, limit: int) -> list[BatchProgress]:
        args: list[Any] = [limit]
        rows = await self._pool.fetch(
            f"""WITH recent AS (
                    SELECT id, tenant_id, total, created_at, idempotency_key, correlation_id FROM batches
                     WHERE {_tenant_clause(tenant_id, args)} ORDER BY created_at DESC, id DESC LIMIT $1)
                SELECT r.*, (SELECT coalesce(jsonb_object_agg(status, n), '{{}}'::jsonb)
                               FROM (SELECT status, count(*) AS n FROM notifications
                                      WHERE batch_id = r.id GROUP BY status) c) AS counts
                  FROM recent r ORDER BY r.created_at DESC, r.id DESC""",
            *args,
        )
        return [
            BatchProgress(
                Batch(
                    id=r["id"],
                    tenant_id=r["tenant_id"],
                    total=r["total"],
                    created_at=r["created_at"],
                    idempotency_key=r["idempotency_key"],
                    correlation_id=r["correlation_id"],
                ),
                {Status(k): int(v) for k, v in r["counts"].items()},  # jsonb: decoded by the pool's codec
            )
            for r in rows
        ]

    async def provider_health(self, tenant_id: str | None, since: datetime) -> list[ProviderHealth]:
        args: list[Any] = [since]
        rows = await self._pool.fetch(
            f"""SELECT a.provider, count(*) AS attempts,
                       count(*) FILTER (WHERE a.outcome <> 'delivered') AS failures
                  FROM delivery_attempts a JOIN notifications n ON n.id = a.notification_id
                 WHERE a.finished_at >= $1 AND {_tenant_clause(tenant_id, args, "n.tenant_id")}
                 GROUP BY a.provider ORDER BY a.provider""",
            *args,
        )
        return [ProviderHealth(r["provider"], r["attempts"], r["failures"]) for r in rows]

    async def tenants(self) -> list[str]:
        rows = await self._pool.fetch("SELECT DISTINCT tenant_id FROM api_keys ORDER BY tenant_id")
        return [r["tenant_id"] for r in rows]

    async def unpublished_outbox(self) -> int:
        # Two counts, each over its small partial index, rather than a scan of every kept record.
        count: int = await self._pool.fetchval(
            """SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind <> 'status')
                    + (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind = 'status')"""
        )
        return count

    async def worker_reports(self, since: datetime) -> list[WorkerReport]:
        rows = await self._pool.fetch(
            "SELECT worker_id, reported_at, lag, breakers, rate_limits FROM worker_reports "
            "WHERE reported_at >= $1 ORDER BY worker_id",
            since,
        )
        return [
            WorkerReport(r["worker_id"], r["reported_at"], r["lag"], r["breakers"], r["rate_limits"])
            for r in rows
        ]


class PgWorkerReports:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def report(self, report: WorkerReport) -> None:
        await self._pool.execute(
            """INSERT INTO worker_reports (worker_id, reported_at, lag, breakers, rate_limits)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (worker_id) DO UPDATE
                  SET reported_at = excluded.reported_at, lag = excluded.lag,
                      breakers = excluded.breakers, rate_limits = excluded.rate_limits""",
            report.worker_id,
            report.reported_at,
            report.lag,  # jsonb: encoded by the pool's codec
            report.breakers,
            report.rate_limits,
        )
        # Workers that went away a day ago are forgotten.
        await self._pool.execute(
            "DELETE FROM worker_reports WHERE reported_at < $1::timestamptz - interval '1 day'",
            report.reported_at,
        )
