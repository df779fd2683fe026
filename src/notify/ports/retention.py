from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from notify.domain.retention import Erased


class Retention(Protocol):
    async def purge(
        self, tenant_id: str | None, older_than: datetime, except_tenants: Sequence[str], limit: int
    ) -> int:
        """Delete up to ``limit`` notifications created before ``older_than`` that reached a final status
        (with their attempts, status history, receipts and webhook deliveries), of ``tenant_id`` (None:
        every tenant but ``except_tenants``). One short transaction; returns how many went."""
        ...

    async def purge_batches(self, older_than: datetime, limit: int) -> int:
        """Delete up to ``limit`` batches created before ``older_than`` with no notification left."""
        ...

    async def erase_recipient(self, tenant_id: str, recipients: Sequence[str]) -> Erased:
        """Delete every notification of the tenant sent to any of ``recipients``, whatever its status."""
        ...
