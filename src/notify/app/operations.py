"""Operator use cases: the attempts ledger, dead letters and their replay, pausing and resuming delivery.

Who may pause what: a tenant key pauses and resumes its own tenant's traffic; the global switch (every
tenant) and another tenant's pause need an ``admin`` key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from notify.domain.delivery import AttemptRecord
from notify.domain.errors import Forbidden, NotFound
from notify.domain.keys import ApiKey
from notify.domain.model import Channel, Notification
from notify.domain.pauses import EVERY, PauseState
from notify.domain.queries import DeadLetterQuery, Page
from notify.domain.timeline import StatusChange
from notify.ports.clock import Clock
from notify.ports.store import OperatorActions


@dataclass(frozen=True, slots=True)
class BulkReplay:
    matched: int  # dead letters the filter matched when the call began
    replayed: int

    @property
    def remaining(self) -> int:
        """What another call with the same filter would find (barring concurrent changes)."""
        return max(0, self.matched - self.replayed)


class PauseScope(StrEnum):
    GLOBAL = "global"  # every tenant: the operator's switch
    TENANT = "tenant"  # one tenant's own traffic


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What holds one tenant's deliveries: the global switch and the tenant's own pauses."""

    tenant_id: str
    everyone: PauseState
    tenant: PauseState

    def is_paused(self, channel: Channel) -> bool:
        return self.everyone.is_paused(channel) or self.tenant.is_paused(channel)

    @property
    def paused_all(self) -> bool:
        return self.everyone.all_channels or self.tenant.all_channels


def pause_target(key: ApiKey, scope: PauseScope | None, tenant_id: str | None) -> str | None:
    """The tenant a pause or resume applies to, None for every tenant.

    Without a scope a key acts on what it owns: an admin key on the global switch, a tenant key on its
    tenant. The global switch and another tenant need an admin key."""
    if tenant_id is not None and scope is PauseScope.GLOBAL:
        raise Forbidden("A global pause names no tenant: give either scope 'global' or a tenant_id.")
    if tenant_id is None and (scope is PauseScope.GLOBAL or (scope is None and key.is_admin)):
        if not key.is_admin:
            raise Forbidden("Pausing or resuming delivery for every tenant needs an admin API key.")
        return None
    target = tenant_id if tenant_id is not None else key.tenant_id
    if target != key.tenant_id and not key.is_admin:
        raise Forbidden("Pausing or resuming another tenant's delivery needs an admin API key.")
    return target


class Operations:
    def __init__(
        self, store: OperatorActions, clock: Clock, *, on_enqueued: Callable[[], None] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_enqueued = on_enqueued or (lambda: None)

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord]:
        ledger = await self._store.attempts(tenant_id, notification_id)
        if ledger is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return ledger

    async def timeline(self, tenant_id: str, notification_id: UUID) -> list[StatusChange]:
        found = await self._store.timeline(tenant_id, notification_id)
        if found is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return found

    async def replay(self, tenant_id: str, notification_id: UUID) -> Notification:
        replayed = await self._store.replay(tenant_id, notification_id, self._clock.now())
        self._on_enqueued()
        return replayed

    async def dead_letters(self, query: DeadLetterQuery) -> Page:
        return await self._store.dead_letters(query)

    async def replay_dead_letters(self, query: DeadLetterQuery, *, dry_run: bool, limit: int) -> BulkReplay:
        """Replay at most ``limit`` (oldest first): a filter matching a million rows is worked through in
        bounded calls, each one transaction of a bounded size."""
        matched = await self._store.count_dead_letters(query)
        if dry_run or not matched:
            return BulkReplay(matched, 0)
        replayed = await self._store.replay_dead_letters(query, self._clock.now(), limit)
        if replayed:
            self._on_enqueued()
        return BulkReplay(matched, replayed)

    async def delivery_state(self, tenant_id: str) -> DeliveryState:
        pauses = await self._store.pauses()
        return DeliveryState(tenant_id, pauses.of(EVERY), pauses.of(tenant_id))

    async def set_paused(
        self,
        key: ApiKey,
        paused: bool,
        channel: Channel | None = None,
        *,
        scope: PauseScope | None = None,
        tenant_id: str | None = None,
    ) -> DeliveryState:
        """Pause or resume as ``key`` may (see :func:`pause_target`); the state of the tenant it applied to
        (the key's own when it was the global switch)."""
        target = pause_target(key, scope, tenant_id)
        await self._store.set_paused(target, channel, paused, self._clock.now())
        return await self.delivery_state(target if target is not None else key.tenant_id)
