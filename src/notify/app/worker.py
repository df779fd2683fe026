"""The worker process at run time: records from a work source, delivered through the dispatcher with hooks
around each delivery, and background jobs (relay, recovery, metrics) beside them.

Its lifecycle is explicit::

    async with Worker(...) as worker:   # background jobs start
        await worker.run(stop)          # consume until ``stop``; drain in-flight deliveries, commit
                                        # leaving the block stops the background jobs

What it runs on (the Kafka consumer loop, the database, the provider clients) is built by
``notify.bootstrap``; what it does around a delivery (log context, a span, metrics) comes in as hooks, so a
test can build it from fakes and watch every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from notify.app.delivery import Deliverer, DeliveryOutcome
from notify.app.dispatcher import PriorityDispatcher, Work

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeliveryRound:
    """One record's trip through the deliverer; ``outcome`` is set once the deliverer returns (it stays None
    when the delivery raised)."""

    work: Work
    outcome: DeliveryOutcome | None = None


class DeliveryHook(Protocol):
    """Something done around every delivery (the logging context, a span, metrics). Entered before the
    deliverer is called; ``round.outcome`` is known when it exits."""

    def around(self, round: DeliveryRound) -> AbstractContextManager[object]: ...


class WorkSource(Protocol):
    """Feeds records to the dispatcher until ``stop`` is set; then lets in-flight deliveries finish (bounded)
    and acknowledges what was handled (the Kafka consumer loop)."""

    async def run(self, stop: asyncio.Event) -> None: ...


BackgroundJob = Callable[[asyncio.Event], Coroutine[object, object, None]]


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    concurrency: int  # deliveries in flight at once
    per_channel: int  # of which one channel may hold at most this many
    buffer_per_priority: int  # records waiting per priority before its partitions are paused


class Worker:
    def __init__(
        self,
        deliverer: Deliverer,
        source: Callable[[PriorityDispatcher], WorkSource],
        limits: WorkerLimits,
        *,
        worker_id: str,
        hooks: Sequence[DeliveryHook] = (),
        background: Sequence[tuple[str, BackgroundJob]] = (),
        on_round_done: Callable[[], None] | None = None,
    ) -> None:
        """``source`` builds the work source around the dispatcher it feeds. ``hooks`` are entered in order
        around each delivery (the first is outermost). ``background`` jobs run while the worker is entered,
        each until the event it is given is set. ``on_round_done`` is called after each delivery that changed
        something (not after a skipped duplicate): the relay is woken to publish its status events now."""
        self._deliverer = deliverer
        self._hooks = tuple(hooks)
        self._background = tuple(background)
        self._on_round_done = on_round_done
        self.worker_id = worker_id
        self.limits = limits
        self.dispatcher = PriorityDispatcher(
            self.handle,
            concurrency=limits.concurrency,
            per_channel_limit=limits.per_channel,
            buffer_limit=limits.buffer_per_priority,
        )
        self._source = source(self.dispatcher)
        self._stack: AsyncExitStack | None = None

    @property
    def handled(self) -> int:
        return self.dispatcher.handled

    async def __aenter__(self) -> Worker:
        async with AsyncExitStack() as stack:
            stop = asyncio.Event()
            for name, job in self._background:
                task = asyncio.create_task(job(stop), name=name)
                stack.push_async_callback(_finish, task)
            stack.callback(stop.set)  # runs first on exit: every job is asked to stop before any is awaited
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def run(self, stop: asyncio.Event) -> int:
        """Deliver until ``stop`` is set, then drain; returns how many records were handled."""
        log.info(
            "worker started", extra={"worker_id": self.worker_id, "concurrency": self.limits.concurrency}
        )
        await self._source.run(stop)
        log.info("worker stopped", extra={"worker_id": self.worker_id, "handled": self.handled})
        return self.handled

    async def handle(self, work: Work) -> None:
        """One record: the dispatcher's handler."""
        assert work.notification_id is not None  # the dispatcher acknowledges unreadable records itself
        round = DeliveryRound(work)
        with ExitStack() as hooks:
            for hook in self._hooks:
                hooks.enter_context(hook.around(round))
            round.outcome = await self._deliverer.deliver(work.notification_id, work.channel, work.tenant_id)
        if round.outcome is not DeliveryOutcome.SKIPPED and self._on_round_done is not None:
            self._on_round_done()


async def _finish(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
