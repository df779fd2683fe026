"""Operator use cases: the attempts ledger, dead letters and their replay, pausing and resuming delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from notify.domain.errors import NotFound
from notify.domain.model import Channel, Notification
from notify.ports.clock import Clock
from notify.ports.store import AttemptRecord, DeadLetterQuery, NotificationStore, Page


@dataclass(frozen=True, slots=True)
class DeliveryState:
    paused_all: bool
    paused_channels: frozenset[Channel]

    def is_paused(self, channel: Channel) -> bool:
        return self.paused_all or channel in self.paused_channels


class Operations:
    def __init__(
        self, store: NotificationStore, clock: Clock, *, on_enqueued: Callable[[], None] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_enqueued = on_enqueued or (lambda: None)

    async def attempts(self, tenant_id: str, notification_id: UUID) -> list[AttemptRecord]:
        ledger = await self._store.attempts(tenant_id, notification_id)
        if ledger is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return ledger

    async def replay(self, tenant_id: str, notification_id: UUID) -> Notification:
        replayed = await self._store.replay(tenant_id, notification_id, self._clock.now())
        self._on_enqueued()
        return replayed

    async def dead_letters(self, query: DeadLetterQuery) -> Page:
        return await self._store.dead_letters(query)

    async def replay_dead_letters(self, query: DeadLetterQuery, *, dry_run: bool) -> int:
        count = await self._store.replay_dead_letters(query, self._clock.now(), dry_run)
        if count and not dry_run:
            self._on_enqueued()
        return count

    async def delivery_state(self) -> DeliveryState:
        scopes = await self._store.paused_channels()
        return DeliveryState("*" in scopes, frozenset(Channel(s) for s in scopes if s != "*"))

    async def set_paused(self, channel: Channel | None, paused: bool) -> DeliveryState:
        await self._store.set_paused(channel, paused, self._clock.now())
        return await self.delivery_state()
