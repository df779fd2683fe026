"""Deliver one notification: claim it, try its channel's providers in order, store what happened.

A round tries the primary provider, and on a transient failure or an open breaker the next one (failover).
The round ends ``delivered``, ``failed`` (permanent refusal, or retries exhausted) or ``retrying`` with a
jittered ``next_attempt_at``; when every breaker was open (or the only calls were half-open trials that
failed) the round does not use up a retry: an open breaker never fails a notification. The scheduler
re-produces a retry to Kafka when it is due (see notify.app.recovery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import count
from typing import Protocol
from uuid import UUID

from notify.app.priority_limiter import PriorityRateLimiter
from notify.domain.delivery import AttemptOutcome, AttemptRecord, Claim, DeliveryResult
from notify.domain.errors import (
    CircuitOpen,
    OutcomeNotStored,
    PermanentProviderError,
    TransientProviderError,
    TrialCallFailed,
)
from notify.domain.model import Channel, Notification, Status
from notify.domain.pauses import Pauses
from notify.domain.retry import RetryPolicy, attempts_left
from notify.ports.clock import Clock
from notify.ports.metrics import DeliveryObserver, NoObserver
from notify.ports.provider import DeliveryProvider, ProviderMessage, ProviderReceipt
from notify.ports.resilience import CircuitBreaker, RateLimiter
from notify.ports.store import DeliveryLedger

log = logging.getLogger(__name__)


# Kept free at the end of a lease to store the outcome of a round.
_STORE_MARGIN = timedelta(seconds=1)


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    EXPIRED = "expired"
    PAUSED = "paused"  # its channel is paused: left pending, re-enqueued after resume
    SKIPPED = "skipped"  # not claimable: cancelled, already delivered, claimed by another worker, unknown
    CLAIM_LOST = "claim_lost"  # our lease ran out and the notification was recovered before we stored


@dataclass(frozen=True, slots=True)
class Route:
    """One provider of a channel, behind its own circuit breaker."""

    provider: DeliveryProvider
    breaker: CircuitBreaker


class PauseCache:
    """Which scopes are paused, read from the store at most every ``ttl_s``: every worker honours a pause
    within that time without a query per message."""

    def __init__(self, load: Callable[[], Awaitable[Pauses]], clock: Clock, ttl_s: float) -> None:
        self._load = load
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._pauses = Pauses(frozenset())
        self._loaded_at: datetime | None = None

    async def is_paused(self, channel: str, tenant_id: str | None = None) -> bool:
        now = self._clock.now()
        if self._loaded_at is None or now - self._loaded_at >= self._ttl:
            self._pauses = await self._load()
            self._loaded_at = now
        return self._pauses.blocks(tenant_id, channel)


class TenantRouteSource(Protocol):
    """A tenant's own providers for a channel, or None to use the operator's (``app.tenant_providers``)."""

    async def routes(self, tenant_id: str, channel: Channel) -> Sequence[Route] | None: ...


class _Unlimited:
    async def acquire(self, key: str) -> float:
        return 0.0


class Deliverer:
    def __init__(
        self,
        store: DeliveryLedger,
        routes: Mapping[Channel, Sequence[Route]],
        clock: Clock,
        *,
        worker_id: str,
        lease: timedelta,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        pauses: PauseCache | None = None,
        open_breaker_wait_s: float = 1.0,
        observer: DeliveryObserver | None = None,
        round_budget: timedelta = timedelta(seconds=10),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tenant_routes: TenantRouteSource | None = None,
    ) -> None:
        """``round_budget``: the longest a round of provider calls can take (the channel's provider timeouts
        added up); a claim always has that much lease left before a round starts, and the outcome is stored
        within the lease (retried while the database is unreachable) or not at all."""
        if lease <= round_budget + _STORE_MARGIN:
            raise ValueError(
                f"the lease ({lease.total_seconds():g} s) must be longer than a delivery round "
                f"({round_budget.total_seconds():g} s) plus {_STORE_MARGIN.total_seconds():g} s to store it"
            )
        self._observer = observer or NoObserver()
        self._round_budget = round_budget
        self._sleep = sleep
        self._store = store
        self._routes = routes
        self._tenant_routes = tenant_routes
        self._clock = clock
        self._worker_id = worker_id
        self._lease = lease
        self._policy = policy or RetryPolicy()
        self._limiter = PriorityRateLimiter(limiter or _Unlimited())
        self._pauses = pauses
        self._open_breaker_wait_s = open_breaker_wait_s
        self._claims = count(1)

    async def deliver(
        self, notification_id: UUID, channel: str | None = None, tenant_id: str | None = None
    ) -> DeliveryOutcome:
        """``channel`` and ``tenant_id`` come from the record's headers: known before the claim, they let a
        paused notification wait without being claimed."""
        if (
            channel is not None
            and self._pauses is not None
            and await self._pauses.is_paused(channel, tenant_id)
        ):
            await self._store.park(notification_id, self._clock.now())
            return DeliveryOutcome.PAUSED
        now = self._clock.now()
        # Each claim gets its own token, so a result is stored only by the claim that is still current.
        claim = Claim(f"{self._worker_id}#{next(self._claims)}", now + self._lease)
        notification = await self._store.claim(notification_id, claim, now)
        if notification is None:
            return DeliveryOutcome.SKIPPED  # a duplicate record, cancelled, delivered: it costs no token
        if notification.status is Status.EXPIRED:
            return DeliveryOutcome.EXPIRED
        # Claimed first, then a token: a record the claim drops never takes a token from a real send.
        waited = await self._limiter.acquire(notification.channel.value, notification.priority)
        self._observer.limiter_waited(notification.channel.value, waited)
        held = await self._keep_lease_for_a_round(notification_id, claim)
        if held is None:
            return DeliveryOutcome.CLAIM_LOST
        result = await self._attempt(notification)
        stored_at = await self._store_outcome(notification_id, held, result)
        if stored_at is None:
            return DeliveryOutcome.CLAIM_LOST
        self._observer.round_finished(notification, result, stored_at)
        if result.status is not Status.DELIVERED:
            log.info(
                "delivery not done",
                extra={
                    "notification_id": str(notification_id),
                    "status": result.status.value,
                    "error": result.error,
                    "next_attempt_at": str(result.next_attempt_at),
                },
            )
        return DeliveryOutcome(result.status.value)

    async def _keep_lease_for_a_round(self, notification_id: UUID, claim: Claim) -> Claim | None:
        """The claim, its lease extended if the token wait ate into it: a round must never outlast its lease
        (another worker would recover the notification and send it again). None if the claim was lost."""
        now = self._clock.now()
        if claim.lease_until - now >= self._round_budget + _STORE_MARGIN:
            return claim
        renewed = Claim(claim.worker_id, now + self._lease)
        if not await self._store.extend_lease(notification_id, renewed, now):
            return None
        return renewed

    async def _store_outcome(
        self, notification_id: UUID, claim: Claim, result: DeliveryResult
    ) -> datetime | None:
        """Store the round's outcome, retrying while the database is unreachable, for as long as the lease
        allows. When it returns the provider call was made: it must never be made again because only the
        storing failed. Returns when it was stored; None if the claim was lost; raises OutcomeNotStored when
        the lease ran out first."""
        wait = 0.1
        while True:
            stored_at = self._clock.now()
            try:
                if await self._store.record_result(notification_id, claim, stored_at, result):
                    return stored_at
                return None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                left = (claim.lease_until - self._clock.now() - _STORE_MARGIN / 2).total_seconds()
                if left <= 0:
                    raise OutcomeNotStored(
                        f"the outcome of notification {notification_id} ({result.status.value}) could not be "
                        f"stored before its lease ran out: {exc!r}"
                    ) from exc
                log.warning(
                    "storing a delivery outcome failed; retrying",
                    extra={"notification_id": str(notification_id), "error": repr(exc), "lease_left_s": left},
                )
                await self._sleep(min(wait, left))
                wait = min(2.0, wait * 2)

    async def _attempt(self, n: Notification) -> DeliveryResult:
        attempt = n.attempts + 1
        message = ProviderMessage(
            notification_id=n.id,
            attempt=attempt,
            channel=n.channel.value,
            to=n.recipient,
            content=n.content,
            subject=n.subject,
            metadata=n.metadata,
            correlation_id=n.correlation_id,
        )
        calls: list[AttemptRecord] = []
        last_error: TransientProviderError | None = None  # of a call that counts (not a breaker trial)
        open_waits: list[float] = []
        own = await self._tenant_routes.routes(n.tenant_id, n.channel) if self._tenant_routes else None
        for route in own or self._routes[n.channel]:
            started, t0 = self._clock.now(), time.monotonic()

            async def send(route: Route = route) -> ProviderReceipt:
                return await route.provider.send(message)

            try:
                receipt = await route.breaker.call(send)
            except CircuitOpen as exc:
                open_waits.append(exc.retry_after_s or self._open_breaker_wait_s)
                continue  # no call was made: fail over without recording an attempt
            except TrialCallFailed as exc:
                # The breaker's probe of a provider still down: in the ledger, but not held against the
                # notification; it waits for the next trial like a notification behind an open breaker.
                calls.append(self._record(attempt, route, started, t0, AttemptOutcome.TRANSIENT, exc, True))
                open_waits.append(route.breaker.retry_after_s() or self._open_breaker_wait_s)
                continue
            except TransientProviderError as exc:
                calls.append(self._record(attempt, route, started, t0, AttemptOutcome.TRANSIENT, exc))
                last_error = exc
                continue
            except PermanentProviderError as exc:
                calls.append(self._record(attempt, route, started, t0, AttemptOutcome.PERMANENT, exc))
                return DeliveryResult(Status.FAILED, calls, provider=route.provider.name, error=exc.message)
            calls.append(self._record(attempt, route, started, t0, AttemptOutcome.DELIVERED, None))
            return DeliveryResult(
                Status.DELIVERED, calls, provider=receipt.provider, provider_message_id=receipt.message_id
            )

        now = self._clock.now()
        if last_error is None:
            # Every breaker was open, or failed its trial: wait until the first one lets a trial through. Not
            # an attempt: no retry is used up.
            wait = min(open_waits) if open_waits else self._open_breaker_wait_s
            return DeliveryResult(
                Status.RETRYING,
                calls,
                provider=calls[-1].provider if calls else None,
                error="every provider's circuit breaker is open"
                + (f"; its trial call failed: {calls[-1].error}" if calls else ""),
                next_attempt_at=now + timedelta(seconds=wait),
            )
        made = attempt - n.attempt_base
        if attempts_left(made, n.max_retries) == 0:
            return DeliveryResult(
                Status.FAILED,
                calls,
                provider=calls[-1].provider,
                error=f"retries exhausted after {made} attempts: {last_error.message}",
            )
        delay = self._policy.delay_s(made - 1, last_error.retry_after_s)
        return DeliveryResult(
            Status.RETRYING,
            calls,
            provider=calls[-1].provider,
            error=last_error.message,
            next_attempt_at=now + timedelta(seconds=delay),
        )

    def _record(
        self,
        attempt: int,
        route: Route,
        started: datetime,
        t0: float,
        outcome: AttemptOutcome,
        error: Exception | None,
        breaker_trial: bool = False,
    ) -> AttemptRecord:
        elapsed = timedelta(seconds=time.monotonic() - t0)
        status = getattr(error, "status", None)
        return AttemptRecord(
            attempt=attempt,
            provider=route.provider.name,
            started_at=started,
            finished_at=started + elapsed,
            outcome=outcome,
            http_status=status,
            error=str(error) if error else None,
            breaker_trial=breaker_trial,
        )
