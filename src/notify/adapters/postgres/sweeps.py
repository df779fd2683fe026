"""``Sweeps`` on PostgreSQL: release what is due and recover what was lost, ``FOR UPDATE SKIP LOCKED`` so any
number of workers sweep at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from notify.adapters.postgres.rows import (
    affected,
    enqueue,
)
from notify.domain.model import PRIORITIES_BY_RANK, Priority
from notify.ports.queue import Waiting


class PgSweeps:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def purge_status_history(self, older_than: datetime, limit: int) -> int:
        # In bounded chunks (one index range each): never a long lock or a huge transaction.
        status: str = await self._pool.execute(
            """DELETE FROM status_history WHERE id IN (
                   SELECT id FROM status_history WHERE at < $1 ORDER BY at LIMIT $2)""",
            older_than,
            limit,
        )
        return int(status.split()[-1])

    @staticmethod
    async def _by_priority(release: Callable[[Priority, int], Awaitable[int]], limit: int) -> int:
        """Up to ``limit`` released, highest priority first: a backlog of due low notifications (a campaign,
        the retries after an outage, a paused channel resumed) does not hold back a due high one. A statement
        per priority, each reading its own range of an index that leads with the priority (migration 0018)."""
        released = 0
        for priority in PRIORITIES_BY_RANK:
            if released < limit:
                released += await release(priority, limit - released)
        return released

    async def release_due_scheduled(self, now: datetime, limit: int) -> int:
        async def release(priority: Priority, up_to: int) -> int:
            return await enqueue(
                self._pool,
                """SELECT id FROM notifications
                    WHERE status = 'scheduled' AND priority = $3 AND scheduled_at <= $1
                    ORDER BY scheduled_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
                now,
                up_to,
                priority.value,
            )

        return await self._by_priority(release, limit)

    async def recover_expired_leases(self, now: datetime, limit: int) -> int:
        return await enqueue(
            self._pool,
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
        stale = f"enqueued_at < $4 AND {_lost(5)}" if waiting is not None else "false"

        async def release(priority: Priority, up_to: int) -> int:
            status = await self._pool.execute(
                f"""WITH due AS (
                       SELECT id FROM notifications n
                        WHERE status = 'retrying' AND priority = $3 AND next_attempt_at <= $1
                          AND (enqueued_at IS NULL OR ({stale}))
                        ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
                   ), marked AS (
                       UPDATE notifications n SET enqueued_at = $1 FROM due WHERE n.id = due.id
                       RETURNING n.id, n.priority, n.channel, n.correlation_id
                   )
                   INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at)
                   SELECT id, priority, channel, correlation_id, $1 FROM marked""",
                now,
                up_to,
                priority.value,
                *((stale_before, *_waiting_args(waiting)) if waiting is not None else ()),
            )
            return affected(status)

        return await self._by_priority(release, limit)

    async def requeue_parked(self, now: datetime, limit: int) -> int:
        async def release(priority: Priority, up_to: int) -> int:
            return await enqueue(
                self._pool,
                """SELECT n.id FROM notifications n
                    WHERE n.status = 'pending' AND n.enqueued_at IS NULL AND n.priority = $3
                      AND NOT EXISTS (SELECT 1 FROM delivery_controls c
                                       WHERE c.paused AND c.tenant_id IN ('*', n.tenant_id)
                                         AND c.channel IN ('*', n.channel))
                    LIMIT $2 FOR UPDATE SKIP LOCKED""",
                now,
                up_to,
                priority.value,
            )

        return await self._by_priority(release, limit)

    async def requeue_stale_pending(
        self, older_than: datetime, now: datetime, limit: int, waiting: Sequence[Waiting]
    ) -> int:
        return await enqueue(
            self._pool,
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
