"""Status webhooks: a tenant manages its endpoints (the API), workers deliver the events (the dispatcher).

Deliveries are rows in PostgreSQL, written with the status change they report: nothing is lost when a worker
dies (its lease runs out and another worker takes the delivery), a receiver that is down gets everything once
it is back (retries with jittered backoff, kept in the rows), and a receiver that stays down is disabled after
``disable_after_s`` with the reason shown to the tenant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from notify.domain.errors import CircuitOpen, FieldError, NotFound, TransientProviderError, ValidationFailed
from notify.domain.ids import uuid7_at
from notify.domain.model import Channel, Status
from notify.domain.webhooks import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookCall,
    WebhookDelivery,
    WebhookEndpoint,
    check_webhook_url,
    new_signing_secret,
)
from notify.ports.clock import Clock
from notify.ports.resilience import CircuitBreaker
from notify.ports.webhooks import WebhookEndpoints, WebhookQueue, WebhookSender

log = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_TENANT = 20


def _not_found(endpoint_id: UUID) -> NotFound:
    return NotFound(f"There is no webhook endpoint {endpoint_id}.")


class WebhookService:
    def __init__(
        self,
        store: WebhookEndpoints,
        clock: Clock,
        *,
        allow_private_urls: bool,
        rotation_overlap: timedelta,
    ) -> None:
        self._store = store
        self._clock = clock
        self._allow_private = allow_private_urls
        self._overlap = rotation_overlap

    def _check_url(self, url: str) -> None:
        problem = check_webhook_url(url, allow_private=self._allow_private)
        if problem is not None:
            raise ValidationFailed.for_fields([problem])

    async def create(
        self,
        tenant_id: str,
        url: str,
        statuses: frozenset[Status] = frozenset(),
        channels: frozenset[Channel] = frozenset(),
        enabled: bool = True,
    ) -> WebhookEndpoint:
        """A new endpoint; its ``secret`` is for the answer to show once."""
        self._check_url(url)
        if len(await self._store.all(tenant_id)) >= MAX_ENDPOINTS_PER_TENANT:
            raise ValidationFailed.for_fields(
                [FieldError("url", f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} endpoints", "too_many")]
            )
        now = self._clock.now()
        endpoint = WebhookEndpoint(
            uuid7_at(now), tenant_id, url, statuses, channels, enabled, new_signing_secret(), now, now
        )
        await self._store.add(endpoint)
        return endpoint

    async def get(self, tenant_id: str, endpoint_id: UUID) -> WebhookEndpoint:
        endpoint = await self._store.get(tenant_id, endpoint_id)
        if endpoint is None:
            raise _not_found(endpoint_id)
        return endpoint

    async def all(self, tenant_id: str) -> list[WebhookEndpoint]:
        return await self._store.all(tenant_id)

    async def update(
        self,
        tenant_id: str,
        endpoint_id: UUID,
        *,
        url: str | None = None,
        statuses: frozenset[Status] | None = None,
        channels: frozenset[Channel] | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given. Enabling an endpoint notify disabled clears the reason and its failures."""
        current = await self.get(tenant_id, endpoint_id)
        if url is not None:
            self._check_url(url)
        changes: dict[str, object] = {"updated_at": self._clock.now()}
        for name, value in (
            ("url", url),
            ("statuses", statuses),
            ("channels", channels),
            ("enabled", enabled),
        ):
            if value is not None:
                changes[name] = value
        if enabled:
            changes.update(disabled_reason=None, failing_since=None)
        stored = await self._store.update(dataclasses.replace(current, **changes))  # type: ignore[arg-type]
        if stored is None:
            raise _not_found(endpoint_id)
        return stored

    async def rotate_secret(self, tenant_id: str, endpoint_id: UUID) -> WebhookEndpoint:
        """A new secret; the old one keeps signing (beside it) for the rotation overlap."""
        current = await self.get(tenant_id, endpoint_id)
        now = self._clock.now()
        rotated = dataclasses.replace(
            current,
            secret=new_signing_secret(),
            previous_secret=current.secret,
            previous_secret_until=now + self._overlap,
            updated_at=now,
        )
        stored = await self._store.update(rotated)
        if stored is None:
            raise _not_found(endpoint_id)
        return stored

    async def delete(self, tenant_id: str, endpoint_id: UUID) -> None:
        if not await self._store.delete(tenant_id, endpoint_id):
            raise _not_found(endpoint_id)

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: UUID,
        status: DeliveryStatus | None = None,
        before_id: int | None = None,
        limit: int = 20,
    ) -> list[WebhookDelivery]:
        found = await self._store.deliveries(tenant_id, endpoint_id, status, before_id, limit)
        if found is None:
            raise _not_found(endpoint_id)
        return found

    async def attempts(self, tenant_id: str, endpoint_id: UUID, delivery_id: int) -> list[WebhookAttempt]:
        found = await self._store.attempts(tenant_id, endpoint_id, delivery_id)
        if found is None:
            raise NotFound(f"There is no delivery {delivery_id} of endpoint {endpoint_id}.")
        return found

    async def replay(self, tenant_id: str, endpoint_id: UUID, delivery_id: int) -> WebhookDelivery:
        replayed = await self._store.replay(tenant_id, endpoint_id, delivery_id, self._clock.now())
        if replayed is None:
            raise NotFound(f"There is no delivery {delivery_id} of endpoint {endpoint_id}.")
        return replayed


@dataclass(frozen=True)
class WebhookPolicy:
    max_attempts: int = 12
    retry_base_s: float = 5.0
    retry_cap_s: float = 3600.0
    disable_after_s: float = 3 * 86400.0
    lease_s: float = 30.0
    batch: int = 64
    poll_interval_s: float = 0.5

    def delay_s(self, attempts_made: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter, as for notifications: random(0, min(cap, base * 2**(attempts - 1)))."""
        return rand() * min(self.retry_cap_s, self.retry_base_s * 2.0 ** max(0, attempts_made - 1))


class WebhookDispatcher:
    """The workers' background job: lease due deliveries, send them, store what happened."""

    def __init__(
        self,
        queue: WebhookQueue,
        sender: WebhookSender,
        clock: Clock,
        breaker_for: Callable[[UUID], CircuitBreaker],
        *,
        owner: str,
        policy: WebhookPolicy = WebhookPolicy(),
    ) -> None:
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._breaker_for = breaker_for
        self._owner = owner
        self._policy = policy
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: try again next round
                log.warning("webhook round failed", extra={"error": repr(exc)})
                done = 0
            if done:
                continue  # more may be due
            self._wake.clear()
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            await asyncio.wait(
                waiters, timeout=self._policy.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()

    async def round(self) -> int:
        """One lease-and-send round; how many deliveries it worked on."""
        now = self._clock.now()
        claimed = await self._queue.claim_due(
            self._owner, now, now + timedelta(seconds=self._policy.lease_s), self._policy.batch
        )
        await asyncio.gather(*(self._deliver(d, e) for d, e in claimed))
        return len(claimed)

    async def _deliver(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> None:
        breaker = self._breaker_for(endpoint.id)
        calls: list[WebhookCall] = []

        async def send() -> None:
            call = await self._sender.send(endpoint, delivery, self._clock.now())
            calls.append(call)
            if not call.ok:  # any failure of the receiver is evidence it is down: the breaker counts it
                raise TransientProviderError(
                    call.error or f"HTTP {call.http_status}", status=call.http_status
                )

        try:
            await breaker.call(send)
        except CircuitOpen as refused:
            if not calls:  # open: the endpoint is down; try after the cooldown, no attempt used up
                until = self._clock.now() + timedelta(seconds=max(refused.retry_after_s or 1.0, 0.1))
                await self._queue.postpone(delivery, self._owner, until)
                return
        except TransientProviderError:
            pass  # the call was made and failed (a breaker's trial included): stored below
        call = calls[0]
        now = self._clock.now()
        if call.ok:
            await self._queue.record(delivery, self._owner, call, DeliveryStatus.DELIVERED, None)
            if endpoint.failing_since is not None:
                await self._queue.endpoint_succeeded(endpoint.id)
            return
        attempts = delivery.attempts + 1
        if attempts >= self._policy.max_attempts:
            status, next_at = DeliveryStatus.FAILED, None
        else:
            status = DeliveryStatus.PENDING
            next_at = now + timedelta(seconds=self._policy.delay_s(attempts))
        await self._queue.record(delivery, self._owner, call, status, next_at)
        error = call.error or f"HTTP {call.http_status}"
        if await self._queue.endpoint_failed(endpoint.id, now, self._policy.disable_after_s, error):
            log.warning("webhook endpoint disabled", extra={"endpoint_id": str(endpoint.id), "error": error})
