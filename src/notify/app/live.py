"""Live status: fan status events out to the subscribers connected to this API process.

Every API process reads the whole status topic and hands each event to :meth:`LiveHub.publish`, which only
ever queues: each subscriber has a bounded queue, and one that falls behind by more than its capacity is
dropped (its connection is closed) instead of slowing the hub or anyone else. A subscriber sees only its
tenant's events, narrowed by its filter; an operator's subscriber (an admin key that asked for every tenant)
sees every tenant's, each with its tenant.
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
    """One connection's queue of outgoing messages (events and acknowledgements). ``tenant_id`` None: every
    tenant's events (an operator's stream)."""

    def __init__(self, tenant_id: str | None, capacity: int) -> None:
        self.tenant_id = tenant_id
        self.filter = Filter()
        self.capacity = capacity
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        self.overflowed = False
        self.closed = asyncio.Event()  # set when dropped or when the hub shuts down
        # While a resume replays what the client missed, live events wait here (event id, message).
        self._held: list[tuple[int | None, dict[str, Any]]] | None = None
        # Event ids a replay sent: their live twins (the status topic can lag the database) are dropped.
        self._replayed: frozenset[int] = frozenset()

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

    def offer_event(self, message: dict[str, Any], event_id: int | None) -> bool:
        """A live event: queued, or held while a replay runs (bounded like the queue); dropped if a replay
        sent it already."""
        if event_id is not None and event_id in self._replayed:
            return True
        if self._held is None:
            return self.offer(message)
        if self.closed.is_set():
            return False
        if len(self._held) >= self.capacity:
            self.overflowed = True
            self.closed.set()
            return False
        self._held.append((event_id, message))
        return True

    def hold(self) -> None:
        """Hold live events until :meth:`release`: a replay of stored events goes first."""
        if self._held is None:
            self._held = []

    async def put(self, message: dict[str, Any]) -> bool:
        """Queue, waiting while the queue is full (a replay goes as fast as the client reads); False once
        the subscriber is closed."""
        if self.closed.is_set():
            return False
        putter = asyncio.ensure_future(self._queue.put(message))
        closer = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({putter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closer.cancel()
            if not putter.done():
                putter.cancel()
        return putter.done() and not putter.cancelled()

    def release(self, replayed: set[int], remember: int = 10_000) -> None:
        """Queue the live events held during a replay, but those the replay sent already; remember the
        newest ``remember`` replayed ids to drop their live twins arriving later."""
        held, self._held = self._held or [], None
        self._replayed = frozenset(sorted(replayed)[-remember:])
        for event_id, message in held:
            if (event_id is None or event_id not in replayed) and not self.offer(message):
                return

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
        self._by_tenant: dict[str | None, set[Subscriber]] = {}  # None: every tenant's
        # Last sequence number seen per notification (bounded): a re-published event is not sent twice.
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._remember = remember

    def connect(self, tenant_id: str | None) -> Subscriber:
        """A subscriber to ``tenant_id``'s events; None for every tenant's (only for an admin key)."""
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
        for everyone in (False, True):
            for subscriber in list(self._by_tenant.get(None if everyone else event.tenant_id, ())):
                if not subscriber.filter.matches(event):
                    continue
                message = event.for_operator() if everyone else event.public()
                if subscriber.offer_event(message, event.event_id):
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
