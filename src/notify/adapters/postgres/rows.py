"""The notifications table as rows: the column list (written once), reading a row into a Notification, the
one-statement insert of notifications with their dispatch records, and moving picked rows back to pending."""

import json
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from notify.domain.model import Channel, Notification, Priority, Status, sources_of

COLUMNS = (
    "id, tenant_id, batch_id, channel, recipient, subject, content, priority, status, scheduled_at, "
    "expires_at, idempotency_key, template_id, template_variables, metadata, attempts, max_retries, "
    "provider, provider_message_id, error_message, sent_at, failed_at, correlation_id, created_at, "
    "updated_at, next_attempt_at, attempt_base, request_hash, trace_context"
)


def statuses(target: Status) -> list[str]:
    return sorted(s.value for s in sources_of(target))


def row_to_notification(row: asyncpg.Record) -> Notification:
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


def shift_placeholders(sql: str, by: int) -> str:
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + by}", sql)


def affected(status: str) -> int:
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


def new_row(n: Notification) -> tuple[Any, ...]:
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
INSERT_ALL = _INSERT_NEW.format(conflict="")
INSERT_UNLESS_TAKEN = _INSERT_NEW.format(
    conflict="ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def columns_of(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in _NEW_COLUMNS]


# Moves the rows selected by the CTE ``picked`` (locked, SKIP LOCKED) to pending and writes one dispatch
# record each, in one statement.
ENQUEUE_PICKED = """
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


async def enqueue(pool: asyncpg.Pool, pick: str, *args: Any) -> int:
    """Move the rows the ``pick`` query selects to pending, each with a dispatch record; how many."""
    status = await pool.execute(ENQUEUE_PICKED.format(pick=pick), *args)
    return affected(status)


# A constraint one notification breaks fails only that notification, not the requests grouped with it.
ISOLATE = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
