from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from notify.domain.outbox import OutboxRecord
from notify.ports.queue import Position


class DispatchPublisher(Protocol):
    async def publish(self, records: Sequence[OutboxRecord]) -> Sequence[Position] | None:
        """Put each record on its topic and return once the broker acknowledged all of them: where each one
        landed, in order (None if the broker does not say)."""
        ...
