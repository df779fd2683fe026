"""``Notifications`` on PostgreSQL: accept (concurrent single notifications share one statement, see
``grouping.py``), read, page and cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from notify.adapters.postgres.grouping import Coalescer
from notify.adapters.postgres.rows import (
    COLUMNS,
    INSERT_ALL,
    INSERT_UNLESS_TAKEN,
    ISOLATE,
    columns_of,
    new_row,
    row_to_notification,
    statuses,
)
from notify.domain.errors import DuplicateIdempotencyKey, IllegalTransition, NotFound
from notify.domain.ids import highest_id_at, lowest_id_at
from notify.domain.model import Batch, Notification, Status
from notify.domain.queries import ListQuery, Page


class PgNotifications:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._singles: Coalescer[Notification, bool] = Coalescer(
            self._insert_singles, name="accept", max_size=500, isolate_on=ISOLATE
        )

    async def create(self, notifications: Sequence[Notification], batch: Batch | None = None) -> None:
        if batch is None and len(notifications) == 1:
            # Concurrent single notifications share a statement (group commit): see grouping.py.
            if not await self._singles.submit(notifications[0]):
                raise DuplicateIdempotencyKey("An idempotency key is taken.")
            return
        rows = [new_row(n) for n in notifications]
        async with self._pool.acquire() as conn, conn.transaction():
            if batch is not None:
                try:
                    await conn.execute(
                        """INSERT INTO batches (id, tenant_id, total, idempotency_key, request_hash,
                                                correlation_id, created_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                        batch.id,
                        batch.tenant_id,
                        batch.total,
                        batch.idempotency_key,
                        batch.request_hash,
                        batch.correlation_id,
                        batch.created_at,
                    )
                except asyncpg.UniqueViolationError as exc:
                    raise DuplicateIdempotencyKey(
                        "The batch's idempotency key is taken.", batch=True
                    ) from exc
            try:
                await conn.execute(INSERT_ALL, *columns_of(rows))
            except asyncpg.UniqueViolationError as exc:
                raise DuplicateIdempotencyKey("An idempotency key is taken.") from exc

    async def _insert_singles(self, notifications: Sequence[Notification]) -> list[bool]:
        """One statement for a group of single notifications; for each, whether it was stored (False: its
        idempotency key is taken, by an earlier notification or by another of this group)."""
        rows = await self._pool.fetch(INSERT_UNLESS_TAKEN, *columns_of([new_row(n) for n in notifications]))
        stored = {r["id"] for r in rows}
        return [n.id in stored for n in notifications]

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Notification | None:
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant_id,
            key,
        )
        return row_to_notification(row) if row else None

    async def used_idempotency_keys(self, tenant_id: str, keys: Sequence[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT idempotency_key FROM notifications "
            "WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[])",
            tenant_id,
            list(keys),
        )
        return {r["idempotency_key"] for r in rows}

    _BATCH_COLUMNS = "id, tenant_id, total, idempotency_key, request_hash, correlation_id, created_at"

    @staticmethod
    def _batch(row: asyncpg.Record) -> Batch:
        return Batch(
            id=row["id"],
            tenant_id=row["tenant_id"],
            total=row["total"],
            created_at=row["created_at"],
            idempotency_key=row["idempotency_key"],
            request_hash=row["request_hash"],
            correlation_id=row["correlation_id"],
        )

    async def get_batch(self, tenant_id: str, batch_id: UUID) -> Batch | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._BATCH_COLUMNS} FROM batches WHERE id = $1 AND tenant_id = $2", batch_id, tenant_id
        )
        return self._batch(row) if row else None

    async def find_batch_by_idempotency_key(self, tenant_id: str, key: str) -> Batch | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._BATCH_COLUMNS} FROM batches WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant_id,
            key,
        )
        return self._batch(row) if row else None

    async def batch_notifications(self, batch: Batch) -> list[Notification]:
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM notifications WHERE batch_id = $1 ORDER BY id", batch.id
        )
        return [row_to_notification(r) for r in rows]

    async def batch_counts(self, batch_id: UUID) -> dict[Status, int]:
        rows = await self._pool.fetch(
            "SELECT status, count(*) AS n FROM notifications WHERE batch_id = $1 GROUP BY status", batch_id
        )
        return {Status(r["status"]): r["n"] for r in rows}

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None:
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM notifications WHERE id = $1 AND tenant_id = $2",
            notification_id,
            tenant_id,
        )
        return row_to_notification(row) if row else None

    async def search(self, query: ListQuery) -> Page:
        clauses: list[str] = ["true"]
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(f"${len(args)}"))

        if query.tenant_id is not None:
            add("tenant_id = {}", query.tenant_id)
        if query.status is not None:
            add("status = {}", query.status.value)
        if query.channel is not None:
            add("channel = {}", query.channel.value)
        if query.priority is not None:
            add("priority = {}", query.priority.value)
        if query.batch_id is not None:
            add("batch_id = {}", query.batch_id)
        if query.recipient is not None:
            add("recipient = {}", query.recipient)
        if query.date_from is not None:
            add("id >= {}", lowest_id_at(query.date_from))  # lets the (tenant, ..., id) indexes range-scan
            add("created_at >= {}", query.date_from)
        if query.date_to is not None:
            add("id <= {}", highest_id_at(query.date_to))
            add("created_at <= {}", query.date_to)
        if query.after_id is not None:
            add("id < {}", query.after_id)
        args.append(query.page_size + 1)
        sql = (
            f"SELECT {COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        items = [row_to_notification(r) for r in rows[: query.page_size]]
        next_after = items[-1].id if len(rows) > query.page_size else None
        return Page(items, next_after)

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE notifications SET status = 'cancelled', updated_at = $3
                     WHERE id = $1 AND tenant_id = $2 AND status = ANY($4::text[])
                 RETURNING {COLUMNS}""",
                notification_id,
                tenant_id,
                now,
                statuses(Status.CANCELLED),
            )
            if row is not None:
                return row_to_notification(row)
            current = await conn.fetchval(
                "SELECT status FROM notifications WHERE id = $1 AND tenant_id = $2",
                notification_id,
                tenant_id,
            )
        if current is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        raise IllegalTransition(current, Status.CANCELLED.value)
