"""A notification's timeline: every status it was in, from its creation on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from notify.domain.model import Status


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: Status
    previous_status: Status | None  # None: the notification was created in ``status``
    attempt: int  # the attempt being made (processing), else the attempts made
    at: datetime
    error: str | None = None
    provider: str | None = None


def timeline(created_at: datetime, current: Status, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """The creation (in the status the first change left, or the current one when nothing changed yet)
    followed by every change, oldest first."""
    created_in = changes[0].previous_status if changes else current
    assert created_in is not None
    return [StatusChange(created_in, None, 0, created_at), *changes]
