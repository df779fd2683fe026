"""The Worker built from fakes: hooks around each delivery, the relay woken, background jobs bound to its
lifecycle, offsets acknowledged only for what was handled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from notify.app.dispatcher import Partition, PriorityDispatcher
from notify.app.worker import DeliveryRound, Worker, WorkerLimits
from notify.domain.delivery import Claim
from notify.domain.model import Priority, Status
from tests.fakes import FakeClock, FakeProvider, FakeStore
from tests.unit.test_app import SMS, deliverer, service

TOPIC = Partition("notifications.normal", 0)


class ListSource:
    """A work source over a fixed list of records: offers them all, delivers until stopped, then drains and
    keeps the offsets it would commit."""

    def __init__(self, dispatcher: PriorityDispatcher, records: list[UUID]) -> None:
        self.dispatcher = dispatcher
        self.records = records
        self.committed: dict[Partition, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        dispatching = asyncio.create_task(self.dispatcher.run())
        for offset, notification_id in enumerate(self.records):
            self.dispatcher.offer(TOPIC, offset, Priority.NORMAL, notification_id, "sms")
        await stop.wait()
        self.dispatcher.stop_taking()
        await self.dispatcher.drain(5)
        dispatching.cancel()
        self.committed = self.dispatcher.commit_offsets()


class RecordingHook:
    def __init__(self, name: str, seen: list[tuple[str, ...]]) -> None:
        self.name = name
        self.seen = seen

    @contextmanager
    def around(self, round: DeliveryRound) -> Iterator[None]:
        key = str(round.work.offset)
        self.seen.append(("enter", self.name, key))
        try:
            yield
        finally:
            self.seen.append(("exit", self.name, key, round.outcome.value if round.outcome else "none"))


class UnreachableStore(FakeStore):
    async def claim(self, notification_id: UUID, claim: Claim, now: datetime) -> None:
        raise ConnectionError("database unreachable")


def build(
    store: FakeStore, records: list[UUID], seen: list[tuple[str, ...]], woken: list[int], **kwargs: object
) -> tuple[Worker, list[ListSource]]:
    sources: list[ListSource] = []

    def source(dispatcher: PriorityDispatcher) -> ListSource:
        sources.append(ListSource(dispatcher, records))
        return sources[-1]

    worker = Worker(
        deliverer(store, FakeProvider("gw"), FakeClock()),
        source,
        WorkerLimits(concurrency=1, per_channel=1, buffer_per_priority=100),  # one at a time: a clear order
        worker_id="w1",
        hooks=[RecordingHook("outer", seen), RecordingHook("inner", seen)],
        on_round_done=lambda: woken.append(1),
        **kwargs,  # type: ignore[arg-type]
    )
    return worker, sources


async def stop_when(condition: object, stop: asyncio.Event) -> None:
    for _ in range(500):
        if condition():  # type: ignore[operator]
            stop.set()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never got there")


async def test_hooks_wrap_each_delivery_in_order_and_see_its_outcome() -> None:
    store = FakeStore()
    first = await service(store, FakeClock()).create("t", SMS)
    second = await service(store, FakeClock()).create("t", SMS)
    seen: list[tuple[str, ...]] = []
    woken: list[int] = []
    # The first notification's record twice (a duplicate on the topic): the second copy is skipped.
    worker, sources = build(store, [first.id, second.id, first.id], seen, woken)
    stop = asyncio.Event()
    async with worker:
        watcher = asyncio.create_task(stop_when(lambda: worker.handled == 3, stop))
        assert await worker.run(stop) == 3
        await watcher

    assert seen == [
        ("enter", "outer", "0"),
        ("enter", "inner", "0"),
        ("exit", "inner", "0", "delivered"),
        ("exit", "outer", "0", "delivered"),
        ("enter", "outer", "1"),
        ("enter", "inner", "1"),
        ("exit", "inner", "1", "delivered"),
        ("exit", "outer", "1", "delivered"),
        ("enter", "outer", "2"),
        ("enter", "inner", "2"),
        ("exit", "inner", "2", "skipped"),
        ("exit", "outer", "2", "skipped"),
    ]
    assert len(woken) == 2  # the relay is woken for rounds that wrote status events, not for the skip
    assert (
        store.rows[first.id].status is Status.DELIVERED and store.rows[second.id].status is Status.DELIVERED
    )
    assert sources[0].committed == {TOPIC: 3}  # everything handled, so everything acknowledged


async def test_a_delivery_that_raises_exits_its_hooks_without_an_outcome_and_is_not_acknowledged() -> None:
    store = UnreachableStore()
    n = await service(store, FakeClock()).create("t", SMS)
    seen: list[tuple[str, ...]] = []
    worker, sources = build(store, [n.id], seen, [])
    stop = asyncio.Event()
    async with worker:
        watcher = asyncio.create_task(stop_when(lambda: len(seen) >= 4, stop))
        await worker.run(stop)
        await watcher
    assert seen[:4] == [
        ("enter", "outer", "0"),
        ("enter", "inner", "0"),
        ("exit", "inner", "0", "none"),
        ("exit", "outer", "0", "none"),
    ]
    assert sources[0].committed == {TOPIC: 0}  # the commit point stays before it: read again later


async def test_background_jobs_run_while_the_worker_is_entered_and_are_stopped_on_exit() -> None:
    events: list[str] = []
    started = asyncio.Event()

    async def job(stop: asyncio.Event) -> None:
        events.append("started")
        started.set()
        try:
            await stop.wait()
        finally:
            events.append("stopped")

    worker, _ = build(FakeStore(), [], [], [], background=[("job", job)])
    async with worker:
        await asyncio.wait_for(started.wait(), 5)
        assert events == ["started"]
    assert events == ["started", "stopped"]
    assert worker.handled == 0
