"""``OperatorActions`` on PostgreSQL: the attempts ledger, dead letters and replay, pauses."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from notify.adapters.postgres.rows import (
    COLUMNS,
    N_COLUMNS,
    affected,
    row_to_notification,
    shift_placeholders,
)
from notify.domain.delivery import AttemptOutcome, AttemptRecord
from notify.domain.errors import IllegalTransition, NotFound
from notify.domain.model import REPLAYABLE, Channel, Notification, Status
from notify.domain.pauses import EVERY, Pauses
from notify.domain.queries import DeadLetterQuery, Page
from notify.domain.timeline import StatusChange, timeline


class PgOperatorActions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def timeline(self, tenant_id: str, notification_id: UUID) -> list[StatusChange] | None:
        async with self._pool.acquire() as conn:
            notification = await conn.fetchrow(
                "SELECT created_at, status FROM notifications WHERE id = $1 AND tenant_id = $2",
                notification_id,
                tenant_id,
            )
            if notification is None:
                return None
            rows = await conn.fetch(
                """SELECT status, previous_status, attempt, error, provider, at
                     FROM status_history WHERE notification_id = $1 ORDER BY id""",
                notification_id,
            )
        changes = [
            StatusChange(
                Status(r["status"]),
                Status(r["previous_status"]),
                r["attempt"],
                r["at"],
                r["error"],
                r["provider"],
            )
            for r in rows
        ]
        return timeline(notification["created_at"], Status(notification["status"]), changes)

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord] | None:
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(
                "SELECT 1 FROM notifications WHERE id = $1 AND tenant_id = $2", notification_id, tenant_id
            ):
                return None
            rows = await conn.fetch(
                """SELECT attempt, provider, started_at, finished_at, outcome, http_status, error,
                          breaker_trial
                     FROM delivery_attempts WHERE notification_id = $1 ORDER BY id""",
                notification_id,
            )
        return [
            AttemptRecord(
                r["attempt"],
                r["provider"],
                r["started_at"],
                r["finished_at"],
                AttemptOutcome(r["outcome"]),
                r["http_status"],
                r["error"],
                r["breaker_trial"],
            )
            for r in rows
        ]

    @staticmethod
    def _dead_letter_filter(query: DeadLetterQuery) -> tuple[list[str], list[Any]]:
        clauses = ["status = 'failed'"]
        args: list[Any] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(f"${len(args)}"))

        if query.tenant_id is not None:
            add("tenant_id = {}", query.tenant_id)

        if query.channel is not None:
            add("channel = {}", query.channel.value)
        if query.provider is not None:
            add("provider = {}", query.provider)
        if query.error_contains is not None:
            add("strpos(lower(error_message), lower({})) > 0", query.error_contains)
        if query.date_from is not None:
            add("failed_at >= {}", query.date_from)
        if query.date_to is not None:
            add("failed_at <= {}", query.date_to)
        return clauses, args

    async def dead_letters(self, query: DeadLetterQuery) -> Page:
        clauses, args = self._dead_letter_filter(query)
        if query.after_id is not None:
            args.append(query.after_id)
            clauses.append(f"id < ${len(args)}")
        args.append(query.page_size + 1)
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        items = [row_to_notification(r) for r in rows[: query.page_size]]
        return Page(items, items[-1].id if len(rows) > query.page_size else None)

    _REPLAY = f"""
        WITH picked AS ({{pick}}),
        moved AS (
            UPDATE notifications n
               SET status = 'pending', attempt_base = n.attempts, next_attempt_at = NULL,
                   error_message = NULL, failed_at = NULL, enqueued_at = $1, updated_at = $1
              FROM picked WHERE n.id = picked.id
         RETURNING {N_COLUMNS}
        ),
        queued AS (
            INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
            SELECT id, priority, channel, correlation_id, $1 FROM moved
        )
        SELECT * FROM moved
    """

    async def replay(self, tenant_id: str, notification_id: UUID, now: datetime) -> Notification:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                self._REPLAY.format(
                    pick="SELECT id FROM notifications WHERE id = $2 AND tenant_id = $3 "
                    "AND status = ANY($4::text[]) FOR UPDATE"
                ),
                now,
                notification_id,
                tenant_id,
                sorted(s.value for s in REPLAYABLE),
            )
            if row is None:
                current = await conn.fetchval(
                    "SELECT status FROM notifications WHERE id = $1 AND tenant_id = $2",
                    notification_id,
                    tenant_id,
                )
        if row is None:
            if current is None:
                raise NotFound(f"Notification {notification_id} was not found.")
            raise IllegalTransition(current, Status.PENDING.value)
        return row_to_notification(row)

    async def count_dead_letters(self, query: DeadLetterQuery) -> int:
        clauses, args = self._dead_letter_filter(query)
        count: int = await self._pool.fetchval(
            f"SELECT count(*) FROM notifications WHERE {' AND '.join(clauses)}", *args
        )
        return count

    async def replay_dead_letters(self, query: DeadLetterQuery, now: datetime, limit: int) -> int:
        clauses, args = self._dead_letter_filter(query)
        # $1 of the replay statement is `now`: shift the filter's placeholders by one; the limit comes last.
        shifted = [shift_placeholders(c, 1) for c in clauses]
        pick = (
            f"SELECT id FROM notifications WHERE {' AND '.join(shifted)} "
            f"ORDER BY id LIMIT ${len(args) + 2} FOR UPDATE SKIP LOCKED"
        )
        status = await self._pool.execute(self._REPLAY.format(pick=pick), now, *args, limit)
        return affected(status)

    async def set_paused(
        self, tenant_id: str | None, channel: Channel | None, paused: bool, now: datetime
    ) -> None:
        tenant = tenant_id if tenant_id is not None else EVERY
        if channel is None and not paused:  # resume all: every pause of this scope holder
            await self._pool.execute("DELETE FROM delivery_controls WHERE tenant_id = $1", tenant)
            return
        await self._pool.execute(
            """INSERT INTO delivery_controls (tenant_id, channel, paused, updated_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id, channel)
               DO UPDATE SET paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at""",
            tenant,
            channel.value if channel is not None else EVERY,
            paused,
            now,
        )

    async def pauses(self) -> Pauses:
        rows = await self._pool.fetch("SELECT tenant_id, channel FROM delivery_controls WHERE paused")
        return Pauses(frozenset((r["tenant_id"], r["channel"]) for r in rows))
