"""Receipts from providers: kept with their notification, read by its tenant."""

from __future__ import annotations

from uuid import UUID

from notify.domain.errors import NotFound
from notify.domain.receipts import Receipt
from notify.ports.receipts import Receipts


class ReceiptService:
    def __init__(self, receipts: Receipts) -> None:
        self._receipts = receipts

    async def record(self, receipt: Receipt) -> UUID:
        """Keep ``receipt``; the notification it is for. NotFound when no notification was delivered by that
        provider under that message id."""
        found = await self._receipts.record(receipt)
        if found is None:
            raise NotFound(
                f"No notification was delivered by {receipt.provider} as {receipt.provider_message_id}."
            )
        return found

    async def of(self, tenant_id: str, notification_id: UUID) -> list[Receipt]:
        found = await self._receipts.of(tenant_id, notification_id)
        if found is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return found
