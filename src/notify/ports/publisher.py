from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from notify.ports.store import OutboxRecord


class DispatchPublisher(Protocol):
    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        """Put each record on its priority topic and return once the broker acknowledged all of them."""
        ...
