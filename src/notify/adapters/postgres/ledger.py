"""``DeliveryLedger`` on PostgreSQL: claims and outcomes of concurrent deliveries, each group in one
statement; the conditional updates follow the domain's status machine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from notify.adapters.postgres.grouping import Coalescer
from notify.adapters.postgres.rows import (
    ISOLATE,
    N_COLUMNS,
    affected,
    row_to_notification,
    statuses,
)
from notify.adapters.telemetry.tracing import span_in
from notify.domain.delivery import Claim, DeliveryResult
from notify.domain.model import Notification, Status
from notify.domain.text import identifier, storable


class PgDeliveryLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # One claim statement at a time: two in parallel could lock the same rows (a notification's duplicate
        # records) in opposite orders and deadlock; one statement claims everything waiting anyway.
        self._claims: Coalescer[tuple[UUID, Claim, datetime], Notification | None] = Coalescer(
            self._claim_group, name="claim", max_size=500, parallel=1, isolate_on=ISOLATE
        )
        # Groups of results touch distinct notifications (one claim each) and upsert the statistics rows in
        # key order (migration 0011), so two may run at once.
        self._results: Coalescer[tuple[UUID, Claim, datetime, DeliveryResult], bool] = Coalescer(
            self._record_group, name="result", max_size=500, isolate_on=ISOLATE
        )

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
             RETURNING {N_COLUMNS}""",
            [i for i, _, _ in asked],
            [c.worker_id for _, c, _ in asked],
            [c.lease_until for _, c, _ in asked],
            [at for _, _, at in asked],
            statuses(Status.PROCESSING),
        )
        claimed = {r["id"]: row_to_notification(r) for r in rows}
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
        return affected(status) == 1

    async def park(self, notification_id: UUID, now: datetime) -> None:
        # enqueued_at NULL marks it parked: requeue_parked re-enqueues it once its channel is resumed.
        await self._pool.execute(
            "UPDATE notifications SET enqueued_at = NULL, updated_at = $2 "
            "WHERE id = $1 AND status = 'pending'",
            notification_id,
            now,
        )
