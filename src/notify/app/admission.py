"""Backpressure at the door: stop accepting before the unpublished outbox grows without bound.

The outbox is what lets the API accept while Kafka is slow or down; past a configured size, accepting more
only hides an outage and grows the database. Then the API answers 503 with Retry-After instead. The backlog
is read periodically (never per request).
"""

from __future__ import annotations

from notify.domain.errors import Overloaded
from notify.ports.store import Outbox


class Admission:
    def __init__(self, outbox: Outbox, *, max_backlog: int, retry_after_s: float = 5.0) -> None:
        """``max_backlog``: unpublished outbox records past which new notifications are refused; 0: never."""
        self._outbox = outbox
        self._max = max_backlog
        self._retry_after_s = retry_after_s
        self.backlog = 0

    async def refresh(self) -> int:
        self.backlog = await self._outbox.backlog()
        return self.backlog

    @property
    def open(self) -> bool:
        return not self._max or self.backlog < self._max

    def check(self, adding: int = 1) -> None:
        """Raise Overloaded when accepting ``adding`` more would pass the limit."""
        if self._max and self.backlog + adding > self._max:
            raise Overloaded(
                f"{self.backlog} accepted notifications wait to be published (the limit is {self._max}); "
                "try again shortly.",
                retry_after_s=self._retry_after_s,
            )
