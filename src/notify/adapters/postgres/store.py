"""NotificationStore and Outbox on PostgreSQL (asyncpg). Every public method is one transaction.

Status changes are conditional UPDATEs whose ``WHERE status = ANY(...)`` comes from the domain's status
machine, so a change the machine forbids matches no row instead of overwriting anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from notify.adapters.postgres.grouping import Coalescer
from notify.adapters.telemetry.tracing import span_in
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.errors import DuplicateIdempotencyKey, IllegalTransition, NotFound
from notify.domain.ids import highest_id_at, lowest_id_at
from notify.domain.model import REPLAYABLE, Batch, Channel, Notification, Priority, Status, sources_of
from notify.domain.outbox import OutboxKind, OutboxRecord
from notify.domain.pauses import EVERY, Pauses
from notify.domain.queries import DeadLetterQuery, ListQuery, Page
from notify.domain.text import identifier, storable
from notify.ports.queue import Waiting
from notify.ports.store import Publish

_COLUMNS = (
    "id, tenant_id, batch_id, channel, recipient, subject, content, priority, status, scheduled_at, "
    "expires_at, idempotency_key, template_id, template_variables, metadata, attempts, max_retries, "
    "provider, provider_message_id, error_message, sent_at, failed_at, correlation_id, created_at, "
    "updated_at, next_attempt_at, attempt_base, request_hash, trace_context"
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
        next_attempt_at=row["next_attempt_at"],
        attempt_base=row["attempt_base"],
        request_hash=row["request_hash"],
        trace_context=row["trace_context"],
    )


def _shift_placeholders(sql: str, by: int) -> str:
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + by}", sql)


def _affected(status: str) -> int:
    """The row count from an asyncpg command tag such as ``INSERT 0 12`` or ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


# What a new notification is stored with; every other column starts at its default (NULL, 0, ...).
_NEW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("tenant_id", "text"),
    ("batch_id", "uuid"),
    ("channel", "text"),
    ("recipient", "text"),
    ("subject", "text"),
    ("content", "text"),
    ("priority", "text"),
    ("status", "text"),
    ("scheduled_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("idempotency_key", "text"),
    ("template_id", "uuid"),
    ("template_variables", "jsonb"),
    ("metadata", "jsonb"),
    ("max_retries", "int"),
    ("correlation_id", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("request_hash", "text"),
    ("trace_context", "text"),
    ("enqueued_at", "timestamptz"),
)


def _new_row(n: Notification) -> tuple[Any, ...]:
    return (
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
        None if n.template_variables is None else json.dumps(n.template_variables),
        json.dumps(n.metadata),
        n.max_retries,
        n.correlation_id,
        n.created_at,
        n.updated_at,
        n.request_hash,
        n.trace_context,
        n.created_at if n.status is Status.PENDING else None,
    )


# Notifications and the dispatch records of the pending ones, in one statement (one round trip, atomic):
# a column array each ($1..$22). ``{conflict}`` is empty (a duplicate idempotency key fails the statement) or
# skips the duplicates; the ids inserted are returned either way.
_INSERT_NEW = """
WITH new AS (
    INSERT INTO notifications ({columns})
    SELECT {selected} FROM unnest({arrays}) AS u({columns})
    {conflict}
    RETURNING id, status, priority, channel, correlation_id, created_at
), queued AS (
    INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
    SELECT id, priority, channel, correlation_id, created_at FROM new WHERE status = 'pending'
)
SELECT id FROM new
""".format(
    columns=", ".join(name for name, _ in _NEW_COLUMNS),
    selected=", ".join(f"u.{name}::jsonb" if kind == "jsonb" else f"u.{name}" for name, kind in _NEW_COLUMNS),
    arrays=", ".join(
        f"${i}::{'text' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(_NEW_COLUMNS, 1)
    ),
    conflict="{conflict}",
)
_INSERT_ALL = _INSERT_NEW.format(conflict="")
_INSERT_UNLESS_TAKEN = _INSERT_NEW.format(
    conflict="ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def _columns_of(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in _NEW_COLUMNS]


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
        # A constraint one notification breaks fails only that notification, not the requests grouped with it.
        isolate = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
        self._singles: Coalescer[Notification, bool] = Coalescer(
            self._insert_singles, max_size=500, isolate_on=isolate
        )
        # One claim statement at a time: two in parallel could lock the same rows (a notification's duplicate
        # records) in opposite orders and deadlock; one statement claims everything waiting anyway.
        self._claims: Coalescer[tuple[UUID, Claim, datetime], Notification | None] = Coalescer(
            self._claim_group, max_size=500, parallel=1, isolate_on=isolate
        )
        # Groups of results touch distinct notifications (one claim each) and upsert the statistics rows in
        # key order (migration 0011), so two may run at once.
        self._results: Coalescer[tuple[UUID, Claim, datetime, DeliveryResult], bool] = Coalescer(
            self._record_group, max_size=500, isolate_on=isolate
        )

    async def create(self, notifications: Sequence[Notification], batch: Batch | None = None) -> None:
        if batch is None and len(notifications) == 1:
            # Concurrent single notifications share a statement (group commit): see grouping.py.
            if not await self._singles.submit(notifications[0]):
                raise DuplicateIdempotencyKey("An idempotency key is taken.")
            return
        rows = [_new_row(n) for n in notifications]
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
                await conn.execute(_INSERT_ALL, *_columns_of(rows))
            except asyncpg.UniqueViolationError as exc:
                raise DuplicateIdempotencyKey("An idempotency key is taken.") from exc

    async def _insert_singles(self, notifications: Sequence[Notification]) -> list[bool]:
        """One statement for a group of single notifications; for each, whether it was stored (False: its
        idempotency key is taken, by an earlier notification or by another of this group)."""
        rows = await self._pool.fetch(
            _INSERT_UNLESS_TAKEN, *_columns_of([_new_row(n) for n in notifications])
        )
        stored = {r["id"] for r in rows}
        return [n.id in stored for n in notifications]

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Notification | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM notifications WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant_id,
            key,
        )
        return _row_to_notification(row) if row else None

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
            f"SELECT {_COLUMNS} FROM notifications WHERE batch_id = $1 ORDER BY id", batch.id
        )
        return [_row_to_notification(r) for r in rows]

    async def batch_counts(self, batch_id: UUID) -> dict[Status, int]:
        rows = await self._pool.fetch(
            "SELECT status, count(*) AS n FROM notifications WHERE batch_id = $1 GROUP BY status", batch_id
        )
        return {Status(r["status"]): r["n"] for r in rows}

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM notifications WHERE id = $1 AND tenant_id = $2",
            notification_id,
            tenant_id,
        )
        return _row_to_notification(row) if row else None

    async def search(self, query: ListQuery) -> Page:
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
        with span_in("notification claim", None, attributes={"notification.id": str(notification_id)}):
            return await self._claims.submit((notification_id, claim, now))

    async def _claim_group(self, group: Sequence[tuple[UUID, Claim, datetime]]) -> list[Notification | None]:
        """One statement claims a group. A notification past its expires_at becomes 'expired' instead of
        'processing'; a 'retrying' one is claimable only once its retry is due (an early duplicate record is
        skipped). A notification asked for twice in one group is claimed by the first asker only."""
        first: dict[UUID, int] = {}
        for index, (notification_id, _, _) in enumerate(group):
            first.setdefault(notification_id, index)
        asked = [group[i] for i in first.values()]
        rows = await self._pool.fetch(
            f"""UPDATE notifications n SET
                    status = CASE WHEN n.expires_at <= c.at THEN 'expired' ELSE 'processing' END,
                    lease_owner = CASE WHEN n.expires_at <= c.at THEN NULL ELSE c.owner END,
                    lease_expires_at = CASE WHEN n.expires_at <= c.at THEN NULL ELSE c.lease END,
                    next_attempt_at = NULL,
                    updated_at = c.at
                  FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                       AS c(id, owner, lease, at)
                 WHERE n.id = c.id AND n.status = ANY($5::text[])
                   AND (n.status <> 'retrying' OR n.next_attempt_at <= c.at)
             RETURNING {", ".join("n." + c.strip() for c in _COLUMNS.split(","))}""",
            [i for i, _, _ in asked],
            [c.worker_id for _, c, _ in asked],
            [c.lease_until for _, c, _ in asked],
            [at for _, _, at in asked],
            _statuses(Status.PROCESSING),
        )
        claimed = {r["id"]: _row_to_notification(r) for r in rows}
        return [
            claimed.get(notification_id) if first[notification_id] == index else None
            for index, (notification_id, _, _) in enumerate(group)
        ]

    async def record_result(
        self, notification_id: UUID, claim: Claim, now: datetime, result: DeliveryResult
    ) -> bool:
        with span_in(
            "notification status update",
            None,
            attributes={"notification.id": str(notification_id), "notify.status": result.status.value},
        ):
            return await self._results.submit((notification_id, claim, now, result))

    async def _record_group(
        self, group: Sequence[tuple[UUID, Claim, datetime, DeliveryResult]]
    ) -> list[bool]:
        """One statement stores a group of outcomes, each with its ledger rows and (when it failed) its
        dead-letter record, and only where its claim is still current. The same notification twice in one
        group (not expected: one claim holds it) is stored one at a time, after."""
        seen: set[UUID] = set()
        now_group: list[int] = []
        later: list[int] = []
        for index, item in enumerate(group):
            (later if item[0] in seen else now_group).append(index)
            seen.add(item[0])
        stored = await self._record_statement([group[i] for i in now_group])
        results = [False] * len(group)
        for index, ok in zip(now_group, stored, strict=True):
            results[index] = ok
        for index in later:
            results[index] = (await self._record_statement([group[index]]))[0]
        return results

    async def _record_statement(
        self, items: Sequence[tuple[UUID, Claim, datetime, DeliveryResult]]
    ) -> list[bool]:
        calls = [(notification_id, c) for notification_id, _, _, result in items for c in result.calls]
        rows = await self._pool.fetch(
            """WITH r AS (
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                                        $7::text[], $8::timestamptz[], $9::timestamptz[])
                          AS r(id, owner, status, counted, provider, message_id, error, next_at, at)
               ), upd AS (
                   UPDATE notifications n SET
                        status = r.status,
                        attempts = n.attempts + r.counted,
                        provider = COALESCE(r.provider, n.provider),
                        provider_message_id = r.message_id,
                        error_message = r.error,
                        next_attempt_at = r.next_at,
                        sent_at = CASE WHEN r.status = 'delivered' THEN r.at END,
                        failed_at = CASE WHEN r.status = 'failed' THEN r.at END,
                        lease_owner = NULL, lease_expires_at = NULL,
                        -- a retry is due later: its dispatch record is written when it is released
                        enqueued_at = CASE WHEN r.status = 'retrying' THEN NULL ELSE n.enqueued_at END,
                        updated_at = r.at
                     FROM r
                    WHERE n.id = r.id AND n.status = 'processing' AND n.lease_owner = r.owner
                RETURNING n.id, n.priority, n.channel, n.correlation_id, n.status, r.at
               ), ledger AS (
                   INSERT INTO delivery_attempts (notification_id, attempt, provider, started_at, finished_at,
                                                  outcome, http_status, error, latency_ms, breaker_trial)
                   SELECT a.* FROM unnest($10::uuid[], $11::int[], $12::text[], $13::timestamptz[],
                                          $14::timestamptz[], $15::text[], $16::int[], $17::text[],
                                          $18::float8[], $19::bool[])
                          AS a(notification_id, attempt, provider, started_at, finished_at, outcome,
                               http_status, error, latency_ms, breaker_trial)
                    WHERE a.notification_id IN (SELECT id FROM upd)
               ), dead AS (
                   INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at, kind)
                   SELECT id, priority, channel, correlation_id, at, 'dead_letter' FROM upd
                    WHERE status = 'failed'
               )
               SELECT id FROM upd""",
            [i for i, _, _, _ in items],
            [c.worker_id for _, c, _, _ in items],
            [r.status.value for _, _, _, r in items],
            [1 if r.counts_as_attempt else 0 for _, _, _, r in items],
            [r.provider for _, _, _, r in items],
            [r.provider_message_id and identifier(r.provider_message_id) for _, _, _, r in items],
            [(r.error or None) and storable(r.error, 2000) for _, _, _, r in items],
            [r.next_attempt_at for _, _, _, r in items],
            [at for _, _, at, _ in items],
            [i for i, _ in calls],
            [c.attempt for _, c in calls],
            [c.provider for _, c in calls],
            [c.started_at for _, c in calls],
            [c.finished_at for _, c in calls],
            [c.outcome.value for _, c in calls],
            [c.http_status for _, c in calls],
            [c.error and storable(c.error, 2000) for _, c in calls],
            [c.latency_ms for _, c in calls],
            [c.breaker_trial for _, c in calls],
        )
        stored = {r["id"] for r in rows}
        return [notification_id in stored for notification_id, _, _, _ in items]

    async def extend_lease(self, notification_id: UUID, claim: Claim, now: datetime) -> bool:
        status = await self._pool.execute(
            """UPDATE notifications SET lease_expires_at = $3
                WHERE id = $1 AND status = 'processing' AND lease_owner = $2""",
            notification_id,
            claim.worker_id,
            claim.lease_until,
        )
        return _affected(status) == 1

    async def park(self, notification_id: UUID, now: datetime) -> None:
        # enqueued_at NULL marks it parked: requeue_parked re-enqueues it once its channel is resumed.
        await self._pool.execute(
            "UPDATE notifications SET enqueued_at = NULL, updated_at = $2 "
            "WHERE id = $1 AND status = 'pending'",
            notification_id,
            now,
        )

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
        clauses = ["tenant_id = $1", "status = 'failed'"]
        args: list[Any] = [query.tenant_id]

        def add(sql: str, value: Any) -> None:
            args.append(value)
            clauses.append(sql.format(f"${len(args)}"))

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
            f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        items = [_row_to_notification(r) for r in rows[: query.page_size]]
        return Page(items, items[-1].id if len(rows) > query.page_size else None)

    _REPLAY = f"""
        WITH picked AS ({{pick}}),
        moved AS (
            UPDATE notifications n
               SET status = 'pending', attempt_base = n.attempts, next_attempt_at = NULL,
                   error_message = NULL, failed_at = NULL, enqueued_at = $1, updated_at = $1
              FROM picked WHERE n.id = picked.id
         RETURNING {", ".join("n." + c.strip() for c in _COLUMNS.split(","))}
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
        return _row_to_notification(row)

    async def count_dead_letters(self, query: DeadLetterQuery) -> int:
        clauses, args = self._dead_letter_filter(query)
        count: int = await self._pool.fetchval(
            f"SELECT count(*) FROM notifications WHERE {' AND '.join(clauses)}", *args
        )
        return count

    async def replay_dead_letters(self, query: DeadLetterQuery, now: datetime, limit: int) -> int:
        clauses, args = self._dead_letter_filter(query)
        # $1 of the replay statement is `now`: shift the filter's placeholders by one; the limit comes last.
        shifted = [_shift_placeholders(c, 1) for c in clauses]
        pick = (
            f"SELECT id FROM notifications WHERE {' AND '.join(shifted)} "
            f"ORDER BY id LIMIT ${len(args) + 2} FOR UPDATE SKIP LOCKED"
        )
        status = await self._pool.execute(self._REPLAY.format(pick=pick), now, *args, limit)
        return _affected(status)

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

    async def release_due_retries(
        self, now: datetime, limit: int, stale_before: datetime, waiting: Sequence[Waiting] | None = None
    ) -> int:
        # enqueued_at NULL: not released yet. Released before stale_before and still not claimed: released
        # again only if its record was lost (a broker restart), not while it waits behind consumer lag.
        stale = f"enqueued_at < $3 AND {_lost(4)}" if waiting is not None else "false"
        status = await self._pool.execute(
            f"""WITH due AS (
                   SELECT id FROM notifications n
                    WHERE status = 'retrying' AND next_attempt_at <= $1
                      AND (enqueued_at IS NULL OR ({stale}))
                    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
               ), marked AS (
                   UPDATE notifications n SET enqueued_at = $1 FROM due WHERE n.id = due.id
                   RETURNING n.id, n.priority, n.channel, n.correlation_id
               )
               INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
               SELECT id, priority, channel, correlation_id, $1 FROM marked""",
            now,
            limit,
            *((stale_before, *_waiting_args(waiting)) if waiting is not None else ()),
        )
        return _affected(status)

    async def requeue_parked(self, now: datetime, limit: int) -> int:
        return await self._enqueue(
            """SELECT n.id FROM notifications n
                WHERE n.status = 'pending' AND n.enqueued_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM delivery_controls c
                                   WHERE c.paused AND c.tenant_id IN ('*', n.tenant_id)
                                     AND c.channel IN ('*', n.channel))
                LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )

    async def requeue_stale_pending(
        self, older_than: datetime, now: datetime, limit: int, waiting: Sequence[Waiting]
    ) -> int:
        return await self._enqueue(
            f"""SELECT id FROM notifications n WHERE status = 'pending' AND enqueued_at < $3
                  AND {_lost(4)}
                ORDER BY enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
            older_than,
            *_waiting_args(waiting),
        )


# A notification ``n`` whose dispatch record was lost: none of its dispatch records still holds it. A record
# holds it while it waits to be published, or once published while nothing shows it is gone from its
# partition: gone means the group's committed offset is past it (read, yet the notification is still
# pending) or the partition's end is not (the broker lost it, e.g. a restart). A partition the broker said
# nothing about shows nothing. A record without a position (published before positions were kept) holds
# nothing. The ranges are four arrays from placeholder ${first} on: priority, partition, committed, end.
_LOST = """NOT EXISTS (
    SELECT 1 FROM outbox o
     WHERE o.notification_id = n.id AND o.kind = 'dispatch'
       AND (o.published_at IS NULL
            OR (o.kafka_offset IS NOT NULL
                AND NOT EXISTS (SELECT 1
                                  FROM unnest(${first}::text[], ${second}::int[],
                                              ${third}::bigint[], ${fourth}::bigint[])
                                       AS w(priority, part, committed, end_offset)
                                 WHERE w.priority = o.priority AND w.part = o.kafka_partition
                                   AND (o.kafka_offset < w.committed OR o.kafka_offset >= w.end_offset)))))"""


def _lost(first: int) -> str:
    return _LOST.format(first=first, second=first + 1, third=first + 2, fourth=first + 3)


def _waiting_args(waiting: Sequence[Waiting]) -> tuple[list[str], list[int], list[int], list[int]]:
    return (
        [w.priority.value for w in waiting],
        [w.partition for w in waiting],
        [w.committed for w in waiting],
        [w.end for w in waiting],
    )


# Any constant both sides agree on: pg advisory locks are one 64-bit key space per database.
_STATUS_RELAY_LOCK = 0x6E6F74696679_01  # "notify" + 1

_RELAY_SELECT = """
SELECT o.id, o.notification_id, o.priority, o.channel, o.correlation_id, o.created_at, o.kind, o.payload,
       n.trace_context, n.tenant_id
  FROM outbox o JOIN notifications n ON n.id = o.notification_id
 WHERE o.published_at IS NULL AND {kinds}
 ORDER BY o.id LIMIT $1 {lock}
"""


class PgOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = list(
                await conn.fetch(
                    _RELAY_SELECT.format(kinds="o.kind <> 'status'", lock="FOR UPDATE OF o SKIP LOCKED"),
                    limit,
                )
            )
            # Status events go out in id order through one relay at a time (the holder of this lock), so a
            # notification's events reach the topic in the order its transitions committed.
            if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _STATUS_RELAY_LOCK):
                rows += await conn.fetch(
                    _RELAY_SELECT.format(kinds="o.kind = 'status'", lock="FOR UPDATE OF o"), limit
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
                    kind=OutboxKind(r["kind"]),
                    payload=r["payload"],
                    trace_context=r["trace_context"],
                    tenant_id=r["tenant_id"],
                )
                for r in rows
            ]
            positions = await publish(records)
            if positions is None:
                await conn.execute(
                    "UPDATE outbox SET published_at = $2 WHERE id = ANY($1::bigint[])",
                    [r.id for r in records],
                    now,
                )
            else:
                await conn.execute(
                    """UPDATE outbox o SET published_at = $2, kafka_partition = p.part, kafka_offset = p.off
                         FROM unnest($1::bigint[], $3::int[], $4::bigint[]) AS p(id, part, off)
                        WHERE o.id = p.id""",
                    [r.id for r in records],
                    now,
                    [p.partition for p in positions],
                    [p.offset for p in positions],
                )
        return len(records)

    async def purge_published(self, older_than: datetime) -> int:
        status = await self._pool.execute(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1", older_than
        )
        return _affected(status)

    async def backlog(self) -> int:
        # Two counts, each over its small partial index, rather than a scan of every kept record.
        count: int = await self._pool.fetchval(
            """SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind <> 'status')
                    + (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind = 'status')"""
        )
        return count
