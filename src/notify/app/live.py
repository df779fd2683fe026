"""Live status: fan status events out to the subscribers connected to this API process.

Every API process reads the whole status topic and hands each event to :meth:`LiveHub.publish`, which only
ever queues: each subscriber has a bounded queue, and one that falls behind by more than its capacity is
dropped (its connection is closed) instead of slowing the hub or anyone else. A subscriber sees only its
tenant's events, narrowed by its filter.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from notify.domain.events import StatusEvent


@dataclass(frozen=True, slots=True)
class Filter:
    """Which of its tenant's events a subscriber wants. Ids (notification or batch) pick notifications: an
    event matches if either list names it. ``channels`` narrows further. Nothing given: everything."""

    notification_ids: frozenset[str] = frozenset()
    batch_ids: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def matches(self, event: StatusEvent) -> bool:
        if self.channels and event.channel not in self.channels:
            return False
        if not self.notification_ids and not self.batch_ids:
            return True
        return event.notification_id in self.notification_ids or (
            event.batch_id is not None and event.batch_id in self.batch_ids
        )

    def describe(self) -> dict[str, list[str]]:
        return {
            "notification_ids": sorted(self.notification_ids),
            "batch_ids": sorted(self.batch_ids),
            "channels": sorted(self.channels),
        }


class Subscriber:
    """One connection's queue of outgoing messages (events and acknowledgements)."""

    def __init__(self, tenant_id: str, capacity: int) -> None:
        self.tenant_id = tenant_id
        self.filter = Filter()
        self.capacity = capacity
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        self.overflowed = False
        self.closed = asyncio.Event()  # set when dropped or when the hub shuts down

    def offer(self, message: dict[str, Any]) -> bool:
        """Queue without waiting; False (and the subscriber is marked overflowed and closed) when full."""
        if self.closed.is_set():
            return False
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            self.closed.set()
            return False
        return True

    async def next(self) -> dict[str, Any] | None:
        """The next message, or None once the subscriber is closed (queued messages are abandoned then)."""
        if self.closed.is_set():
            return None
        getter = asyncio.ensure_future(self._queue.get())
        closer = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closer.cancel()
            if not getter.done():
                getter.cancel()
        if self.closed.is_set():
            return None
        return getter.result()

    @property
    def pending(self) -> int:
        return self._queue.qsize()


class LiveHub:
    def __init__(self, *, capacity: int, remember: int = 100_000) -> None:
        self._capacity = capacity
        self._by_tenant: dict[str, set[Subscriber]] = {}
        # Last sequence number seen per notification (bounded): a re-published event is not sent twice.
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._remember = remember

    def connect(self, tenant_id: str) -> Subscriber:
        subscriber = Subscriber(tenant_id, self._capacity)
        self._by_tenant.setdefault(tenant_id, set()).add(subscriber)
        return subscriber

    def disconnect(self, subscriber: Subscriber) -> None:
        subscribers = self._by_tenant.get(subscriber.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_tenant[subscriber.tenant_id]
        subscriber.closed.set()

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._by_tenant.values())

    def publish(self, event: StatusEvent) -> int:
        """Queue ``event`` for every matching subscriber; returns how many got it. Never waits."""
        if self._seen(event):
            return 0
        delivered = 0
        for subscriber in list(self._by_tenant.get(event.tenant_id, ())):
            if not subscriber.filter.matches(event):
                continue
            if subscriber.offer(event.public()):
                delivered += 1
            else:
                self.disconnect(subscriber)
        return delivered

    def close_all(self) -> None:
        for subscribers in list(self._by_tenant.values()):
            for subscriber in list(subscribers):
                self.disconnect(subscriber)

    def _seen(self, event: StatusEvent) -> bool:
        last = self._last_seq.get(event.notification_id)
        if last is not None and event.seq <= last:
            return True
        self._last_seq[event.notification_id] = event.seq
        self._last_seq.move_to_end(event.notification_id)
        if len(self._last_seq) > self._remember:
            self._last_seq.popitem(last=False)
        return False
