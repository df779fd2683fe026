"""Deliver one notification: claim it, call the provider, store the outcome."""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

from notify.domain.errors import ProviderError
from notify.domain.model import Status
from notify.ports.clock import Clock
from notify.ports.provider import DeliveryProvider, ProviderMessage
from notify.ports.store import Claim, NotificationStore

log = logging.getLogger(__name__)


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # not claimable: cancelled, already delivered, claimed by another worker, unknown
    CLAIM_LOST = "claim_lost"  # our lease ran out and the notification was recovered before we stored


class Deliverer:
    def __init__(
        self,
        store: NotificationStore,
        provider: DeliveryProvider,
        clock: Clock,
        *,
        worker_id: str,
        lease: timedelta,
    ) -> None:
        self._store = store
        self._provider = provider
        self._clock = clock
        self._worker_id = worker_id
        self._lease = lease

    async def deliver(self, notification_id: UUID) -> DeliveryOutcome:
        now = self._clock.now()
        claim = Claim(self._worker_id, now + self._lease)
        notification = await self._store.claim(notification_id, claim, now)
        if notification is None:
            return DeliveryOutcome.SKIPPED
        if notification.status is Status.EXPIRED:
            return DeliveryOutcome.EXPIRED
        message = ProviderMessage(
            notification_id=notification.id,
            attempt=notification.attempts,
            channel=notification.channel.value,
            to=notification.recipient,
            content=notification.content,
            subject=notification.subject,
            metadata=notification.metadata,
            correlation_id=notification.correlation_id,
        )
        try:
            receipt = await self._provider.send(message)
        except ProviderError as exc:
            stored = await self._store.record_failed(
                notification_id, claim, self._clock.now(), self._provider.name, exc.message
            )
            log.info("delivery failed", extra={"notification_id": str(notification_id), "error": exc.message})
            return DeliveryOutcome.FAILED if stored else DeliveryOutcome.CLAIM_LOST
        stored = await self._store.record_delivered(
            notification_id, claim, self._clock.now(), receipt.provider, receipt.message_id
        )
        return DeliveryOutcome.DELIVERED if stored else DeliveryOutcome.CLAIM_LOST
