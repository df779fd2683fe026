"""Status events kept in PostgreSQL (status_history), for a stream that resumes where a client left off."""

from __future__ import annotations

from typing import Protocol

from notify.domain.events import StatusEvent


class StatusEvents(Protocol):
    async def since(self, tenant_id: str | None, after_event_id: int, limit: int) -> list[StatusEvent]:
        """The tenant's status events with an id above ``after_event_id``, in id order, at most ``limit``;
        None: every tenant's. Kept as long as status_history keeps them (NOTIFY_STATUS_HISTORY_DAYS)."""
        ...
