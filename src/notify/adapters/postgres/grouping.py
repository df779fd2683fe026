"""Group commits: concurrent calls gathered into one statement, each caller answered from its share of it.

Under load, many requests (or deliveries) want the same kind of write at the same moment. One round trip
and one commit for all of them costs little more than for one, so instead of a transaction each, callers
hand their item to a ``Coalescer`` and wait: it runs ``flush`` on everything waiting (up to ``max_size``)
while at most ``parallel`` flushes are in flight, then answers each caller with its own result. Nobody waits
for a timer: a lone caller is flushed at once, and a crowd is flushed in groups as fast as the database
takes them. A caller is answered only after the statement that holds its item committed (or failed: then
every caller of that group gets the error, unless it is one of ``isolate_on``: errors one bad item causes,
such as a constraint violation, after which each item of the group is flushed alone so the others succeed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from notify.adapters.telemetry.metrics import GROUP_ISOLATED, GROUP_ITEMS, GROUP_STATEMENTS

T = TypeVar("T")
R = TypeVar("R")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_size: int = 500,
        parallel: int = 2,
        isolate_on: tuple[type[Exception], ...] = (),
    ) -> None:
        """``flush(items)`` writes a group and returns one result per item, in order, all or nothing. ``name``
        labels the group-commit metrics (statements, items, isolations)."""
        self._flush = flush
        self._max_size = max_size
        self._parallel = parallel
        self._isolate_on = isolate_on
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._statements = GROUP_STATEMENTS.labels(name)
        self._items = GROUP_ITEMS.labels(name)
        self._isolated = GROUP_ISOLATED.labels(name)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # an error of a caller that gave up is not "never retrieved"
        self._waiting.append((item, future))
        self._start()
        return await asyncio.shield(future)  # a cancelled caller does not cancel the others' statement

    def _start(self) -> None:
        while self._waiting and self._in_flight < self._parallel:
            group = [self._waiting.popleft() for _ in range(min(self._max_size, len(self._waiting)))]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._flush([item for item, _ in group])
            except self._isolate_on:
                if len(group) == 1:
                    raise
                # The group's statement changed nothing; find the item at fault by flushing each alone.
                self._isolated.inc()
                for member in group:
                    await self._run_alone(*member)
                return
        except BaseException as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._statements.inc()
            self._items.inc(len(group))
            self._in_flight -= 1
            self._start()

    async def _run_alone(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            (result,) = await self._flush([item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
