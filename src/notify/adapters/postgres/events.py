"""Status events read back from status_history (``ports.events``): what a resuming stream missed."""

from __future__ import annotations

from typing import Any

import asyncpg

from notify.domain.events import StatusEvent

_TIME = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


class PgStatusEvents:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def since(self, tenant_id: str | None, after_event_id: int, limit: int) -> list[StatusEvent]:
        args: list[Any] = [after_event_id, limit]
        tenant = "true"
        if tenant_id is not None:
            args.append(tenant_id)
            tenant = "n.tenant_id = $3"
        rows = await self._pool.fetch(
            f"""SELECT h.id, h.notification_id, n.tenant_id, n.batch_id, n.channel, n.priority, h.status,
                       h.previous_status, h.attempt, h.error, h.provider, {_TIME.format("h.at")} AS at
                  FROM status_history h JOIN notifications n ON n.id = h.notification_id
                 WHERE h.id > $1 AND {tenant}
                 ORDER BY h.id LIMIT $2""",
            *args,
        )
        return [
            StatusEvent(
                notification_id=str(r["notification_id"]),
                tenant_id=r["tenant_id"],
                batch_id=None if r["batch_id"] is None else str(r["batch_id"]),
                channel=r["channel"],
                status=r["status"],
                previous_status=r["previous_status"],
                attempt=r["attempt"],
                error=r["error"],
                provider=r["provider"],
                timestamp=r["at"],
                seq=r["id"],
                priority=r["priority"],
                event_id=r["id"],
            )
            for r in rows
        ]
