"""``Outbox`` on PostgreSQL: the relays' side of the transactional outbox."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from notify.adapters.postgres.rows import (
    affected,
)
from notify.domain.model import Channel, Priority
from notify.domain.outbox import OutboxKind, OutboxRecord
from notify.ports.store import Publish

_STATUS_RELAY_LOCK = 0x6E6F74696679_01  # "notify" + 1

_RELAY_SELECT = """
SELECT o.id, o.notification_id, o.priority, o.channel, o.correlation_id, o.created_at, o.kind, o.payload,
       n.trace_context, n.tenant_id
  FROM outbox o JOIN notifications n ON n.id = o.notification_id
 WHERE o.published_at IS NULL AND {kinds}
 ORDER BY {order} LIMIT $1 {lock}
"""
# Dispatch records and dead letters: highest priority first, so one accepted behind a backlog of lower ones is
# not published after it; the index outbox_unpublished_dispatch (migration 0018) holds this very expression.
_DISPATCH_RELAY = _RELAY_SELECT.format(
    kinds="o.kind <> 'status'",
    order="CASE o.priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END, o.id",
    lock="FOR UPDATE OF o SKIP LOCKED",
)
# Status events: in commit order (see relay_batch).
_STATUS_RELAY = _RELAY_SELECT.format(kinds="o.kind = 'status'", order="o.id", lock="FOR UPDATE OF o")


class PgOutbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def relay_batch(self, limit: int, publish: Publish, now: datetime) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = list(await conn.fetch(_DISPATCH_RELAY, limit))
            # Status events go out in id order through one relay at a time (the holder of this lock), so a
            # notification's events reach the topic in the order its transitions committed.
            if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _STATUS_RELAY_LOCK):
                rows += await conn.fetch(_STATUS_RELAY, limit)
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
        return affected(status)

    async def backlog(self) -> int:
        # Two counts, each over its small partial index, rather than a scan of every kept record.
        count: int = await self._pool.fetchval(
            """SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind <> 'status')
                    + (SELECT count(*) FROM outbox WHERE published_at IS NULL AND kind = 'status')"""
        )
        return count
