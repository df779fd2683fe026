"""How many retries a notification gets after its first attempt, by priority (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from notify.domain.model import Priority

DEFAULT_MAX_RETRIES: Mapping[Priority, int] = MappingProxyType(
    {Priority.HIGH: 5, Priority.NORMAL: 3, Priority.LOW: 2}
)
