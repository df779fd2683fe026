"""Time-ordered identifiers (UUIDv7, RFC 9562) whose timestamp is the entity's creation time.

Because the id embeds ``created_at`` to the millisecond, ordering by id is ordering by creation, and a date
range maps to an id range (used by cursor pagination and date filters on the primary key index).
"""

from __future__ import annotations

import os
from datetime import datetime
from uuid import UUID

_MAX_MS = (1 << 48) - 1


def _ms(at: datetime) -> int:
    ms = int(at.timestamp() * 1000)
    return min(max(ms, 0), _MAX_MS)


def uuid7_at(at: datetime, random_bits: int | None = None) -> UUID:
    """A UUIDv7 whose 48-bit timestamp is ``at`` (ms) and whose 74 other bits are random."""
    rand = random_bits if random_bits is not None else int.from_bytes(os.urandom(10), "big")
    rand &= (1 << 74) - 1
    rand_a = rand >> 62  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (_ms(at) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return UUID(int=value)


def lowest_id_at(at: datetime) -> UUID:
    """The smallest UUIDv7 of the millisecond holding ``at``: ``id >= lowest_id_at(t)`` covers t onwards."""
    return uuid7_at(at, random_bits=0)


def highest_id_at(at: datetime) -> UUID:
    """The largest UUIDv7 of the millisecond holding ``at``."""
    return uuid7_at(at, random_bits=(1 << 74) - 1)


def uuid7_run(at: datetime, count: int) -> list[UUID]:
    """``count`` UUIDv7s of the same millisecond in ascending order (a batch keeps its submission order)."""
    if count > 1 << 12:
        raise ValueError("at most 4096 ids in one run")
    base = int.from_bytes(os.urandom(8), "big") << 10  # 74 bits with room for the sequence below
    base &= ~((1 << 12) - 1)
    return [uuid7_at(at, random_bits=base + i) for i in range(count)]
