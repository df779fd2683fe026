"""What the broker can tell the scheduler: which published dispatch records still wait to be read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from notify.domain.model import Priority


@dataclass(frozen=True, slots=True)
class Position:
    """Where a published record landed: its partition of its priority's topic, and its offset."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """One partition of a priority's topic: the records at offsets ``committed`` (the worker group's next to
    read) up to ``end`` (the next to be written) are still waiting for a worker."""

    priority: Priority
    partition: int
    committed: int
    end: int


class DispatchQueue(Protocol):
    async def waiting(self) -> Sequence[Waiting] | None:
        """Every partition of the priority topics, or None when the broker cannot tell right now (then
        nothing is assumed lost)."""
        ...
