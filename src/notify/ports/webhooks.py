"""Status webhooks: the tenant's endpoints (the API), and the queue of deliveries the workers work through."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from notify.domain.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookCall,
    WebhookDelivery,
    WebhookEndpoint,
)


class WebhookEndpoints(Protocol):
    """A tenant's endpoints and their delivery log. Scoped by tenant: another tenant's do not exist."""

    async def add(self, endpoint: WebhookEndpoint) -> None: ...

    async def get(self, tenant_id: str, endpoint_id: UUID) -> WebhookEndpoint | None: ...

    async def all(self, tenant_id: str) -> list[WebhookEndpoint]: ...

    async def update(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None:
        """Store every field but id, tenant and created_at; None if it is gone."""
        ...

    async def delete(self, tenant_id: str, endpoint_id: UUID) -> bool: ...

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: UUID,
        status: DeliveryStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[WebhookDelivery] | None:
        """Newest first, ids below ``before_id``; None if there is no such endpoint."""
        ...

    async def attempts(
        self, tenant_id: str, endpoint_id: UUID, delivery_id: int
    ) -> list[WebhookAttempt] | None:
        """Every call made for a delivery, oldest first; None if there is no such delivery."""
        ...

    async def replay(
        self, tenant_id: str, endpoint_id: UUID, delivery_id: int, now: datetime
    ) -> WebhookDelivery | None:
        """Queue the delivery again (whatever its status; attempts go on counting); None if not found."""
        ...


class WebhookQueue(Protocol):
    """What the workers' webhook dispatcher needs."""

    async def claim_due(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        """Lease up to ``limit`` due deliveries of enabled endpoints: for each endpoint and notification only
        the oldest one still pending (events of a notification go out in order). A delivery whose lease ran
        out (its worker died) is due again."""
        ...

    async def record(
        self,
        delivery: WebhookDelivery,
        owner: str,
        call: WebhookCall,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Store the call and the delivery's new state, if ``owner`` still holds its lease."""
        ...

    async def postpone(self, delivery: WebhookDelivery, owner: str, until: datetime) -> None:
        """Give the lease back without an attempt (the endpoint's breaker is open)."""
        ...

    async def endpoint_succeeded(self, endpoint_id: UUID) -> None: ...

    async def endpoint_failed(
        self, endpoint_id: UUID, now: datetime, disable_after_s: float, error: str
    ) -> bool:
        """Note a failure; once the endpoint has failed without a success for ``disable_after_s``, disable it
        with the reason. True if this call disabled it."""
        ...


class WebhookSender(Protocol):
    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> WebhookCall:
        """POST the delivery, signed with the endpoint's secrets; never raises for what the receiver does."""
        ...
