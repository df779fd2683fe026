"""Receipts in PostgreSQL (``delivery_receipts``), found by the provider's message id."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from notify.domain.receipts import Receipt, ReceiptStatus


class PgReceipts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, receipt: Receipt) -> UUID | None:
        found: UUID | None = await self._pool.fetchval(
            """
            INSERT INTO delivery_receipts (notification_id, provider, provider_message_id, status,
                                           provider_status, error_code, received_at)
            SELECT id, $2, $1, $3, $4, $5, $6 FROM notifications
             WHERE provider_message_id = $1 AND provider = $2
             LIMIT 1
            RETURNING notification_id
            """,
            receipt.provider_message_id,
            receipt.provider,
            receipt.status.value,
            receipt.provider_status,
            receipt.error_code,
            receipt.received_at,
        )
        return found

    async def of(self, tenant_id: str, notification_id: UUID) -> list[Receipt] | None:
        async with self._pool.acquire() as conn:
            exists = await conn.fetchval(
                "SELECT 1 FROM notifications WHERE id = $1 AND tenant_id = $2", notification_id, tenant_id
            )
            if exists is None:
                return None
            rows = await conn.fetch(
                """SELECT provider, provider_message_id, status, provider_status, error_code, received_at
                     FROM delivery_receipts WHERE notification_id = $1 ORDER BY id""",
                notification_id,
            )
        return [
            Receipt(
                provider=r["provider"],
                provider_message_id=r["provider_message_id"],
                status=ReceiptStatus(r["status"]),
                provider_status=r["provider_status"],
                received_at=r["received_at"],
                error_code=r["error_code"],
            )
            for r in rows
        ]
