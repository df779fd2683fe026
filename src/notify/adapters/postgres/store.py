"""NotificationStore and Outbox on PostgreSQL (asyncpg). Every public method is one transaction.

Status changes are conditional UPDATEs whose ``WHERE status = ANY(...)`` comes from the domain's status
machine, so a change the machine forbids matches no row instead of overwriting anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from notify.domain.errors import Conflict, IllegalTransition, NotFound
from notify.domain.ids import highest_id_at, lowest_id_at
from notify.domain.model import Channel, Notification, Priority, Status, sources_of
from notify.ports.store import Claim, ListQuery, OutboxRecord, Page, Publish

_COLUMNS = (
    "id, tenant_id, batch_id, channel, recipient, subject, content, priority, status, scheduled_at, "
    "expires_at, idempotency_key, template_id, template_variables, metadata, attempts, max_retries, "
    "provider, provider_message_id, error_message, sent_at, failed_at, correlation_id, created_at, updated_at"
)


def _statuses(target: Status) -> list[str]:
    return sorted(s.value for s in sources_of(target))


def _row_to_notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"],
        tenant_id=row["tenant_id"],
        batch_id=row["batch_id"],
        channel=Channel(row["channel"]),
        recipient=row["recipient"],
        subject=row["subject"],
        content=row["content"],
        priority=Priority(row["priority"]),
        status=Status(row["status"]),
        scheduled_at=row["scheduled_at"],
        expires_at=row["expires_at"],
        idempotency_key=row["idempotency_key"],
        template_id=row["template_id"],
        template_variables=row["template_variables"],
        metadata=row["metadata"],
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        error_message=row["error_message"],
        sent_at=row["sent_at"],
        failed_at=row["failed_at"],
        correlation_id=row["correlation_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _affected(status: str) -> int:
    """The row count from an asyncpg command tag such as ``INSERT 0 12`` or ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


_INSERT = f"""
INSERT INTO notifications ({_COLUMNS}, enqueued_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23, $24, $25, $26)
"""

_INSERT_OUTBOX = """
INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
"""

# Moves the rows selected by the CTE ``picked`` (locked, SKIP LOCKED) to pending and writes one dispatch
# record each, in one statement.
_ENQUEUE_PICKED = """
WITH picked AS ({pick}),
moved AS (
    UPDATE notifications n
       SET status = 'pending', enqueued_at = $1, updated_at = $1, lease_owner = NULL, lease_expires_at = NULL
      FROM picked
     WHERE n.id = picked.id
 RETURNING n.id, n.priority, n.channel, n.correlation_id
)
INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
SELECT id, priority, channel, correlation_id, $1 FROM moved
"""


class PgNotificationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, notifications: Sequence[Notification]) -> None:
        rows = [
            (
                n.id,
                n.tenant_id,
                n.batch_id,
                n.channel.value,
                n.recipient,
                n.subject,
                n.content,
                n.priority.value,
                n.status.value,
                n.scheduled_at,
                n.expires_at,
                n.idempotency_key,
                n.template_id,
                n.template_variables,
                n.metadata,
                n.attempts,
                n.max_retries,
                n.provider,
                n.provider_message_id,
                n.error_message,
                n.sent_at,
                n.failed_at,
                n.correlation_id,
                n.created_at,
                n.updated_at,
                n.created_at if n.status is Status.PENDING else None,
            )
            for n in notifications
        ]
        due = [n for n in notifications if n.status is Status.PENDING]
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.executemany(_INSERT, rows)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("The idempotency key was already used for another notification.") from exc
            if due:
                await conn.execute(
                    _INSERT_OUTBOX,
                    [n.id for n in due],
                    [n.priority.value for n in due],
                    [n.channel.value for n in due],
                    [n.correlation_id for n in due],
                    [n.created_at for n in due],
                )

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = $1 AND tenant_id = $2",
            notification_id,
            tenant_id,
        )
        return _row_to_notification(row) if row else None

    async def list(self, query: ListQuery) -> Page:
        clauses = ["tenant_id = $1"]
        args: list[Any] = [query.tenant_id]

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(f"${len(args)}"))

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
            f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        items = [_row_to_notification(r) for r in rows[: query.page_size]]
        next_after = items[-1].id if len(rows) > query.page_size else None
        return Page(items, next_after)

    async def cancel(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE notifications SET status = 'cancelled', updated_at = $3
                     WHERE id = $1 AND tenant_id = $2 AND status = ANY($4::text[])
                 RETURNING {_COLUMNS}""",
                notification_id,
                tenant_id,
                now,
                _statuses(Status.CANCELLED),
            )
            if row is not None:
                return _row_to_notification(row)
            current = await conn.fetchval(
                "SELECT status FROM notifications WHERE id = $1 AND tenant_id = $2",
                notification_id,
                tenant_id,
            )
        if current is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        raise IllegalTransition(current, Status.CANCELLED.value)

    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> Notification | None:
        # One statement: a notification past its expires_at becomes 'expired' instead of 'processing'.
        row = await self._pool.fetchrow(
            f"""UPDATE notifications SET
                    status = CASE WHEN expires_at <= $2 THEN 'expired' ELSE 'processing' END,
                    attempts = CASE WHEN expires_at <= $2 THEN attempts ELSE attempts + 1 END,
                    lease_owner = CASE WHEN expires_at <= $2 THEN NULL ELSE $3 END,
                    lease_expires_at = CASE WHEN expires_at <= $2 THEN NULL ELSE $4::timestamptz END,
                    updated_at = $2
                 WHERE id = $1 AND status = ANY($5::text[])
             RETURNING {_COLUMNS}""",
            notification_id,
            now,
            claim.worker_id,
            claim.lease_until,
            _statuses(Status.PROCESSING),
        )
        return _row_to_notification(row) if row else None

    async def record_delivered(
        self, notification_id: UUID, claim: Claim, now: datetime, provider: str, provider_message_id: str
    ) -> bool:
        status = await self._pool.execute(
            """UPDATE notifications SET status = 'delivered', provider = $3, provider_message_id = $4,
                      sent_at = $5, error_message = NULL, lease_owner = NULL, lease_expires_at = NULL,
                      updated_at = $5
                WHERE id = $1 AND status = 'processing' AND lease_owner = $2""",
            notification_id,
            claim.worker_id,
            provider,
            provider_message_id,
            now,
        )
        return _affected(status) == 1

    async def record_failed(
        self, notification_id: UUID, claim: Claim, now: datetime, provider: str | None, error: str
    ) -> bool:
        status = await self._pool.execute(
            """UPDATE notifications SET status = 'failed', provider = $3, error_message = $4, failed_at = $5,
                      lease_owner = NULL, lease_expires_at = NULL, updated_at = $5
                WHERE id = $1 AND status = 'processing' AND lease_owner = $2""",
            notification_id,
            claim.worker_id,
            provider,
            error[:2000],
            now,
        )
        return _affected(status) == 1

    async def _enqueue(self, pick: str, *args: Any) -> int:
        status = await self._pool.execute(_ENQUEUE_PICKED.format(pick=pick), *args)
        return _affected(status)

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        return await self._enqueue(
            """SELECT id FROM notifications WHERE status = 'scheduled' AND scheduled_at <= $1
                ORDER BY scheduled_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        return await self._enqueue(
            """SELECT id FROM notifications WHERE status = 'processing' AND lease_expires_at < $1
                ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )

    async def requeue_stale_pending(self, older_than: datetime, now: datetime, limit: int) -> int:
        return await self._enqueue(
            """SELECT id FROM notifications WHERE status = 'pending' AND enqueued_at < $3
                ORDER BY enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
            older_than,
        )


class PgOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, notification_id, priority, channel, correlation_id, created_at
                     FROM outbox WHERE published_at IS NULL
                    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                limit,
            )
            if not rows:
                return 0
            records = [
                OutboxRecord(
                    id=r["id"],
                    notification_id=r["notification_id"],
                    priority=Priority(r["priority"]),
                    channel=Channel(r["channel"]),
                    correlation_id=r["correlation_id"],
                    created_at=r["created_at"],
                )
                for r in rows
            ]
            await publish(records)
            await conn.execute(
                "UPDATE outbox SET published_at = $2 WHERE id = ANY($1::bigint[])",
                [r.id for r in records],
                now,
            )
        return len(records)

    async def purge_published(self, older_than: datetime) -> int:
        status = await self._pool.execute(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1", older_than
        )
        return _affected(status)

    async def backlog(self) -> int:
        count: int = await self._pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return count
