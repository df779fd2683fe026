"""What the delivery use case reports for metrics; the Prometheus adapter implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from notify.domain.delivery import DeliveryResult
from notify.domain.model import Notification


class DeliveryObserver(Protocol):
    def limiter_waited(self, channel: str, seconds: float) -> None:
        """A delivery waited this long for its channel's rate limiter."""
        ...

    def round_finished(self, notification: Notification, result: DeliveryResult, stored_at: datetime) -> None:
        """A delivery round of ``notification`` (as claimed) ended in ``result``, stored at ``stored_at``."""
        ...


class NoObserver:
    def limiter_waited(self, channel: str, seconds: float) -> None:
        pass

    def round_finished(self, notification: Notification, result: DeliveryResult, stored_at: datetime) -> None:
        pass
