"""The notifications table as rows: every column written once (``TABLE``), from which the select list, the
mapping of a row to a Notification and the one-statement insert of new notifications (with their dispatch
records) are derived; and moving picked rows back to pending."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import asyncpg

from notify.domain.model import Channel, Notification, Priority, Status, sources_of


def _same(value: Any) -> Any:
    return value


def _enum_value(value: Enum) -> Any:
    return value.value


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of ``notifications`` that is also a field of ``Notification`` (same name)."""

    name: str
    sql_type: str  # of the insert's unnest() array (jsonb travels as text and is cast)
    inserted: bool  # written when a notification is accepted; the others start at their default
    to_db: Callable[[Any], Any] = _same
    from_db: Callable[[Any], Any] = _same


TABLE: tuple[Column, ...] = (
    Column("id", "uuid", True),
    Column("tenant_id", "text", True),
    Column("batch_id", "uuid", True),
    Column("channel", "text", True, _enum_value, Channel),
    Column("recipient", "text", True),
    Column("subject", "text", True),
    Column("content", "text", True),
    Column("priority", "text", True, _enum_value, Priority),
    Column("status", "text", True, _enum_value, Status),
    Column("scheduled_at", "timestamptz", True),
    Column("expires_at", "timestamptz", True),
    Column("idempotency_key", "text", True),
    Column("template_id", "uuid", True),
    Column("template_variables", "jsonb", True, _json_or_null),
    Column("metadata", "jsonb", True, json.dumps),
    Column("attempts", "int", False),
    Column("max_retries", "int", True),
    Column("provider", "text", False),
    Column("provider_message_id", "text", False),
    Column("error_message", "text", False),
    Column("sent_at", "timestamptz", False),
    Column("failed_at", "timestamptz", False),
    Column("correlation_id", "text", True),
    Column("created_at", "timestamptz", True),
    Column("updated_at", "timestamptz", True),
    Column("next_attempt_at", "timestamptz", False),
    Column("attempt_base", "int", False),
    Column("request_hash", "text", True),
    Column("trace_context", "text", True),
)

# The select list of every query that reads notifications (and the same, of the alias ``n``).
COLUMNS = ", ".join(c.name for c in TABLE)
N_COLUMNS = ", ".join(f"n.{c.name}" for c in TABLE)


def statuses(target: Status) -> list[str]:
    return sorted(s.value for s in sources_of(target))


def row_to_notification(row: asyncpg.Record) -> Notification:
    return Notification(**{c.name: c.from_db(row[c.name]) for c in TABLE})


def shift_placeholders(sql: str, by: int) -> str:
    return re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + by}", sql)


def affected(status: str) -> int:
    """The row count from an asyncpg command tag such as ``INSERT 0 12`` or ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


# What a new notification is stored with: its inserted fields, and when it was enqueued (a pending one now).
_NEW: tuple[tuple[str, str], ...] = (
    *((c.name, c.sql_type) for c in TABLE if c.inserted),
    ("enqueued_at", "timestamptz"),
)


def new_row(n: Notification) -> tuple[Any, ...]:
    enqueued_at = n.created_at if n.status is Status.PENDING else None
    return (*(c.to_db(getattr(n, c.name)) for c in TABLE if c.inserted), enqueued_at)


# Notifications and the dispatch records of the pending ones, in one statement (one round trip, atomic):
# a column array each. ``{conflict}`` is empty (a duplicate idempotency key fails the statement) or
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
    columns=", ".join(name for name, _ in _NEW),
    selected=", ".join(f"u.{name}::jsonb" if kind == "jsonb" else f"u.{name}" for name, kind in _NEW),
    arrays=", ".join(f"${i}::{'text' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(_NEW, 1)),
    conflict="{conflict}",
)
INSERT_ALL = _INSERT_NEW.format(conflict="")
INSERT_UNLESS_TAKEN = _INSERT_NEW.format(
    conflict="ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def columns_of(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in _NEW]


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
