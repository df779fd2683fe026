"""Retention and erasure on PostgreSQL: notifications go with everything that references them (ON DELETE
CASCADE), in bounded chunks by id (time-ordered UUIDv7: an index range, never a long lock)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from notify.adapters.postgres.rows import affected
from notify.domain.ids import lowest_id_at
from notify.domain.model import TERMINAL_STATUSES
from notify.domain.retention import Erased

_FINAL = sorted(s.value for s in TERMINAL_STATUSES)
# What an erasure reports, beside the notifications: each table that goes with them (ON DELETE CASCADE).
_REFERENCING = (
    ("delivery_attempts", "attempts"),
    ("status_history", "status_changes"),
    ("delivery_receipts", "receipts"),
    ("webhook_deliveries", "webhook_deliveries"),
)


class PgRetention:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def purge(
        self, tenant_id: str | None, older_than: datetime, except_tenants: Sequence[str], limit: int
    ) -> int:
        status = await self._pool.execute(
            """DELETE FROM notifications WHERE id IN (
                   SELECT id FROM notifications
                    WHERE id < $1 AND status = ANY($2::text[])
                      AND ($3::text IS NULL OR tenant_id = $3) AND NOT (tenant_id = ANY($4::text[]))
                    ORDER BY id LIMIT $5)""",
            lowest_id_at(older_than),
            _FINAL,
            tenant_id,
            list(except_tenants),
            limit,
        )
        return affected(status)

    async def purge_batches(self, older_than: datetime, limit: int) -> int:
        status = await self._pool.execute(
            """DELETE FROM batches WHERE id IN (
                   SELECT b.id FROM batches b
                    WHERE b.created_at < $1
                      AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.batch_id = b.id)
                    LIMIT $2)""",
            older_than,
            limit,
        )
        return affected(status)

    async def erase_recipient(self, tenant_id: str, recipients: Sequence[str]) -> Erased:
        async with self._pool.acquire() as conn, conn.transaction():
            counted = ", ".join(
                f"(SELECT count(*) FROM {table} WHERE notification_id IN (SELECT id FROM doomed)) AS {name}"
                for table, name in _REFERENCING
            )
            row = await conn.fetchrow(
                f"""WITH doomed AS (
                       SELECT id FROM notifications WHERE tenant_id = $1 AND recipient = ANY($2::text[])
                          FOR UPDATE)
                   SELECT (SELECT count(*) FROM doomed) AS notifications, {counted}""",
                tenant_id,
                list(recipients),
            )
            await conn.execute(
                "DELETE FROM notifications WHERE tenant_id = $1 AND recipient = ANY($2::text[])",
                tenant_id,
                list(recipients),
            )
        assert row is not None
        return Erased(
            row["notifications"],
            row["attempts"],
            row["status_changes"],
            row["receipts"],
            row["webhook_deliveries"],
        )
