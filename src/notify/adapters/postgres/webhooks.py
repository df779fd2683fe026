"""Webhook endpoints, their delivery log and the workers' delivery queue, on PostgreSQL (migration 0016)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from notify.adapters.postgres.rows import affected
from notify.domain.model import Channel, Status
from notify.domain.text import storable
from notify.domain.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookCall,
    WebhookDelivery,
    WebhookEndpoint,
)

_ENDPOINT = (
    "id, tenant_id, url, statuses, channels, enabled, secret, previous_secret, previous_secret_until, "
    "failing_since, disabled_reason, created_at, updated_at"
)
_DELIVERY = (
    "id, endpoint_id, notification_id, event_id, payload, status, attempts, next_attempt_at, "
    "last_http_status, last_error, last_latency_ms, delivered_at, created_at"
)
MAX_ERROR_CHARS = 500
_W_COLUMNS = ", ".join(f"w.{c.strip()} AS w_{c.strip()}" for c in _ENDPOINT.split(","))


def _endpoint(r: asyncpg.Record, prefix: str = "") -> WebhookEndpoint:
    return WebhookEndpoint(
        id=r[prefix + "id"],
        tenant_id=r[prefix + "tenant_id"],
        url=r[prefix + "url"],
        statuses=frozenset(Status(s) for s in r[prefix + "statuses"]),
        channels=frozenset(Channel(c) for c in r[prefix + "channels"]),
        enabled=r[prefix + "enabled"],
        secret=r[prefix + "secret"],
        previous_secret=r[prefix + "previous_secret"],
        previous_secret_until=r[prefix + "previous_secret_until"],
        failing_since=r[prefix + "failing_since"],
        disabled_reason=r[prefix + "disabled_reason"],
        created_at=r[prefix + "created_at"],
        updated_at=r[prefix + "updated_at"],
    )


def _delivery(r: asyncpg.Record) -> WebhookDelivery:
    return WebhookDelivery(
        id=r["id"],
        endpoint_id=r["endpoint_id"],
        notification_id=r["notification_id"],
        event_id=r["event_id"],
        payload=r["payload"],  # jsonb: decoded by the pool's codec
        status=DeliveryStatus(r["status"]),
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_http_status=r["last_http_status"],
        last_error=r["last_error"],
        last_latency_ms=r["last_latency_ms"],
        delivered_at=r["delivered_at"],
        created_at=r["created_at"],
    )


def _endpoint_args(e: WebhookEndpoint) -> list[Any]:
    return [
        e.id,
        e.tenant_id,
        e.url,
        sorted(s.value for s in e.statuses),
        sorted(c.value for c in e.channels),
        e.enabled,
        e.secret,
        e.previous_secret,
        e.previous_secret_until,
        e.failing_since,
        e.disabled_reason,
        e.created_at,
        e.updated_at,
    ]


class PgWebhookEndpoints:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._pool.execute(
            f"INSERT INTO webhook_endpoints ({_ENDPOINT}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            *_endpoint_args(endpoint),
        )

    async def get(self, tenant_id: str, endpoint_id: UUID) -> WebhookEndpoint | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2",
            endpoint_id,
            tenant_id,
        )
        return _endpoint(row) if row else None

    async def all(self, tenant_id: str) -> list[WebhookEndpoint]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY id", tenant_id
        )
        return [_endpoint(r) for r in rows]

    async def update(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None:
        row = await self._pool.fetchrow(
            f"""UPDATE webhook_endpoints
                   SET url = $3, statuses = $4, channels = $5, enabled = $6, secret = $7,
                       previous_secret = $8, previous_secret_until = $9, failing_since = $10,
                       disabled_reason = $11, updated_at = $13
                 WHERE id = $1 AND tenant_id = $2 AND $12::timestamptz IS NOT NULL
             RETURNING {_ENDPOINT}""",
            *_endpoint_args(endpoint),
        )
        return _endpoint(row) if row else None

    async def delete(self, tenant_id: str, endpoint_id: UUID) -> bool:
        status = await self._pool.execute(
            "DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id
        )
        return affected(status) == 1

    async def _owns(self, conn: asyncpg.Connection, tenant_id: str, endpoint_id: UUID) -> bool:
        found = await conn.fetchval(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2", endpoint_id, tenant_id
        )
        return found is not None

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: UUID,
        status: DeliveryStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[WebhookDelivery] | None:
        async with self._pool.acquire() as conn:
            if not await self._owns(conn, tenant_id, endpoint_id):
                return None
            rows = await conn.fetch(
                f"""SELECT {_DELIVERY} FROM webhook_deliveries
                     WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2)
                       AND ($3::bigint IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4""",
                endpoint_id,
                status.value if status else None,
                before_id,
                limit,
            )
        return [_delivery(r) for r in rows]

    async def attempts(
        self, tenant_id: str, endpoint_id: UUID, delivery_id: int
    ) -> list[WebhookAttempt] | None:
        async with self._pool.acquire() as conn:
            owned = await conn.fetchval(
                """SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
                    WHERE d.id = $1 AND d.endpoint_id = $2 AND w.tenant_id = $3""",
                delivery_id,
                endpoint_id,
                tenant_id,
            )
            if owned is None:
                return None
            rows = await conn.fetch(
                "SELECT attempt, started_at, finished_at, http_status, error FROM webhook_attempts "
                "WHERE delivery_id = $1 ORDER BY id",
                delivery_id,
            )
        return [
            WebhookAttempt(
                r["attempt"], WebhookCall(r["started_at"], r["finished_at"], r["http_status"], r["error"])
            )
            for r in rows
        ]

    async def replay(
        self, tenant_id: str, endpoint_id: UUID, delivery_id: int, now: datetime
    ) -> WebhookDelivery | None:
        row = await self._pool.fetchrow(
            f"""UPDATE webhook_deliveries d
                   SET status = 'pending', next_attempt_at = $4, lease_owner = NULL, lease_until = NULL,
                       delivered_at = NULL
                  FROM webhook_endpoints w
                 WHERE d.id = $1 AND d.endpoint_id = $2 AND w.id = d.endpoint_id AND w.tenant_id = $3
             RETURNING {", ".join("d." + c.strip() for c in _DELIVERY.split(","))}""",
            delivery_id,
            endpoint_id,
            tenant_id,
            now,
        )
        return _delivery(row) if row else None


class PgWebhookQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_due(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        rows = await self._pool.fetch(
            f"""WITH due AS (
                    SELECT d.id FROM webhook_deliveries d
                      JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.enabled
                     WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                       AND (d.lease_until IS NULL OR d.lease_until < $1)
                       AND NOT EXISTS (
                           SELECT 1 FROM webhook_deliveries earlier
                            WHERE earlier.endpoint_id = d.endpoint_id
                              AND earlier.notification_id = d.notification_id
                              AND earlier.status = 'pending' AND earlier.id < d.id)
                     ORDER BY d.next_attempt_at, d.id
                     LIMIT $4
                       FOR UPDATE OF d SKIP LOCKED
                ),
                leased AS (
                    UPDATE webhook_deliveries d SET lease_owner = $2, lease_until = $3
                      FROM due WHERE d.id = due.id
                 RETURNING {", ".join("d." + c.strip() for c in _DELIVERY.split(","))}
                )
                SELECT leased.*, {_W_COLUMNS}
                  FROM leased JOIN webhook_endpoints w ON w.id = leased.endpoint_id
                 ORDER BY leased.id""",
            now,
            owner,
            lease_until,
            limit,
        )
        return [(_delivery(r), _endpoint(r, "w_")) for r in rows]

    async def record(
        self,
        delivery: WebhookDelivery,
        owner: str,
        call: WebhookCall,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        error = storable(call.error, MAX_ERROR_CHARS) if call.error else None
        async with self._pool.acquire() as conn, conn.transaction():
            attempt = await conn.fetchval(
                """UPDATE webhook_deliveries
                      SET status = $3, attempts = attempts + 1, next_attempt_at = $4, lease_owner = NULL,
                          lease_until = NULL, last_http_status = $5, last_error = $6, last_latency_ms = $7,
                          delivered_at = CASE WHEN $3 = 'delivered' THEN $8::timestamptz END
                    WHERE id = $1 AND lease_owner = $2
                RETURNING attempts""",
                delivery.id,
                owner,
                status.value,
                next_attempt_at,
                call.http_status,
                error,
                call.latency_ms,
                call.finished_at,
            )
            if attempt is None:  # the lease ran out and another worker has it now
                return False
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at, http_status, "
                "error, latency_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                delivery.id,
                attempt,
                call.started_at,
                call.finished_at,
                call.http_status,
                error,
                call.latency_ms,
            )
        return True

    async def postpone(self, delivery: WebhookDelivery, owner: str, until: datetime) -> None:
        await self._pool.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL "
            "WHERE id = $1 AND lease_owner = $2",
            delivery.id,
            owner,
            until,
        )

    async def endpoint_succeeded(self, endpoint_id: UUID) -> None:
        await self._pool.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            endpoint_id,
        )

    async def endpoint_failed(
        self, endpoint_id: UUID, now: datetime, disable_after_s: float, error: str
    ) -> bool:
        disabled = await self._pool.fetchval(
            """UPDATE webhook_endpoints
                  SET failing_since = coalesce(failing_since, $2),
                      enabled = CASE WHEN $2 - coalesce(failing_since, $2) >= make_interval(secs => $3)
                                THEN false ELSE enabled END,
                      disabled_reason = CASE
                          WHEN $2 - coalesce(failing_since, $2) >= make_interval(secs => $3)
                          THEN 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ', last error: ' || $4
                          ELSE disabled_reason END
                WHERE id = $1 AND enabled
            RETURNING NOT enabled""",
            endpoint_id,
            now,
            disable_after_s,
            storable(error, MAX_ERROR_CHARS),
        )
        return bool(disabled)
