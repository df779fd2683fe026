from __future__ import annotations

from typing import Protocol
from uuid import UUID

from notify.domain.receipts import Receipt


class Receipts(Protocol):
    """Receipts kept per notification (``app.receipts``)."""

    async def record(self, receipt: Receipt) -> UUID | None:
        """Keep ``receipt`` with the notification its provider delivered under that message id; that
        notification's id, or None when no notification has it (nothing is kept then)."""
        ...

    async def of(self, tenant_id: str, notification_id: UUID) -> list[Receipt] | None:
        """A notification's receipts, oldest first; None if there is no such notification for this tenant."""
        ...
