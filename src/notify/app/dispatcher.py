"""True priority over the three topics, many deliveries at once, and safe offset commits.

The consumer adapter feeds every fetched record in with :meth:`PriorityDispatcher.offer`. Records wait in one
bounded buffer per priority; whenever a delivery slot frees, the dispatcher takes the oldest record of the
highest priority that has one, and a lower priority never takes the slots kept back for the ones above it
(an eighth of them per step), so a backlog of ``low`` never makes ``high`` wait for a slot at all. When a
priority's buffer is full the adapter pauses that topic's partitions (fetching is far faster than
delivering), which keeps memory bounded without blocking the other priorities.

Deliveries finish out of order, so the dispatcher tracks per partition which offsets are outstanding and only
lets the adapter commit up to the oldest one not yet finished: an offset is committed only after its outcome
is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from notify.domain.errors import OutcomeNotStored
from notify.domain.model import PRIORITIES_BY_RANK, Priority

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Work:
    partition: Partition
    offset: int
    priority: Priority
    notification_id: UUID | None  # None: a record we cannot read; acknowledged without delivery
    generation: int = 0
    channel: str | None = None  # from the record's headers: lets one channel's slowness spare the others
    trace_context: str | None = None  # the record's W3C traceparent: the delivery continues that trace
    correlation_id: str | None = None  # the accepting request's X-Correlation-ID, for logs and the provider
    tenant_id: str | None = None  # from the record's headers: a tenant's pause is honoured before the claim


Handler = Callable[[Work], Awaitable[object]]


class _PartitionState:
    __slots__ = ("committed", "generation", "next_offset", "outstanding")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.outstanding: set[int] = set()
        self.next_offset: int | None = None  # one past the highest offset seen
        self.committed: int | None = None

    def commit_point(self) -> int | None:
        if self.outstanding:
            return min(self.outstanding)
        return self.next_offset


class PriorityDispatcher:
    def __init__(
        self,
        handle: Handler,
        *,
        concurrency: int,
        buffer_limit: int,
        per_channel_limit: int | None = None,
        retry_delay_s: float = 0.5,
    ) -> None:
        self._handle = handle
        self._concurrency = concurrency
        # A channel waiting on its rate limit or a slow provider holds at most this many of the slots, so the
        # other channels keep moving.
        self._per_channel_limit = per_channel_limit or concurrency
        # Each priority leaves an eighth of the slots (overall and per channel) to the priorities above it:
        # a backlog of low fills at most 3/4 of them, so a high record finds a slot free the moment it is
        # fetched instead of waiting for a low delivery to finish.
        self._reserve = concurrency // 8
        self._channel_reserve = self._per_channel_limit // 8
        self._channel_in_flight: dict[str | None, int] = {}
        self._buffer_limit = buffer_limit
        self._retry_delay_s = retry_delay_s
        self._buffers: dict[Priority, deque[Work]] = {p: deque() for p in PRIORITIES_BY_RANK}
        self._partitions: dict[Partition, _PartitionState] = {}
        self._generation = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._work_ready = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._taking = True
        self.handled = 0

    # --- feeding -------------------------------------------------------------------------------------------

    def offer(
        self,
        partition: Partition,
        offset: int,
        priority: Priority,
        notification_id: UUID | None,
        channel: str | None = None,
        *,
        trace_context: str | None = None,
        correlation_id: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        state = self._partitions.get(partition)
        if state is None:
            self._generation += 1
            state = self._partitions[partition] = _PartitionState(self._generation)
        state.outstanding.add(offset)
        state.next_offset = max(state.next_offset or 0, offset + 1)
        self._buffers[priority].append(
            Work(
                partition,
                offset,
                priority,
                notification_id,
                state.generation,
                channel,
                trace_context,
                correlation_id,
                tenant_id,
            )
        )
        self._work_ready.set()

    def buffered(self, priority: Priority) -> int:
        return len(self._buffers[priority])

    def is_full(self, priority: Priority) -> bool:
        return len(self._buffers[priority]) >= self._buffer_limit

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Forget partitions this consumer no longer owns: their buffered records go to the new owner.
        Deliveries in flight finish; their notifications are claimed, so the new owner skips them."""
        gone = set(partitions)
        for p in gone:
            self._partitions.pop(p, None)
        for priority, buffer in self._buffers.items():
            self._buffers[priority] = deque(w for w in buffer if w.partition not in gone)

    # --- committing ----------------------------------------------------------------------------------------

    def commit_offsets(self, only: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Offsets that may be committed now (next offset to read), only those that moved since the last
        call. Call :meth:`mark_committed` once the broker accepted them."""
        wanted = set(only) if only is not None else None
        result: dict[Partition, int] = {}
        for partition, state in self._partitions.items():
            if wanted is not None and partition not in wanted:
                continue
            point = state.commit_point()
            if point is not None and point != state.committed:
                result[partition] = point
        return result

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        for partition, offset in offsets.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = offset

    # --- dispatching ---------------------------------------------------------------------------------------

    def _take(self) -> Work | None:
        """The oldest record of the highest priority that may start now: its channel has a free slot, and
        slots kept back for the priorities above it are not touched."""
        in_flight = sum(self._channel_in_flight.values())
        for rank, priority in enumerate(PRIORITIES_BY_RANK):
            buffer = self._buffers[priority]
            if not buffer or in_flight >= self._concurrency - rank * self._reserve:
                continue
            channel_limit = self._per_channel_limit - rank * self._channel_reserve
            for index, work in enumerate(buffer):
                if work.channel is None or self._channel_in_flight.get(work.channel, 0) < channel_limit:
                    del buffer[index]
                    self._channel_in_flight[work.channel] = self._channel_in_flight.get(work.channel, 0) + 1
                    return work
        return None

    async def run(self) -> None:
        """Start deliveries until :meth:`stop_taking` is called."""
        while True:
            await self._slots.acquire()
            work = self._take() if self._taking else None
            while work is None and self._taking:
                self._work_ready.clear()
                await self._work_ready.wait()
                work = self._take() if self._taking else None
            if work is None:  # stopping: what is still buffered stays uncommitted for the next owner
                self._slots.release()
                return
            task = asyncio.create_task(self._run_one(work))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run_one(self, work: Work) -> None:
        try:
            if work.notification_id is not None:
                await self._handle_until_stored(work)
        except Exception:
            return  # outcome not stored: the offset stays outstanding and is never committed past
        else:
            self._done(work)
        finally:
            self._channel_in_flight[work.channel] -= 1
            self._slots.release()
            self._work_ready.set()  # a channel that was at its limit may take work again

    async def _handle_until_stored(self, work: Work) -> None:
        # An exception here means the outcome was not stored (e.g. the database is unreachable): keep the
        # offset outstanding and try again, unless we are shutting down, in which case the record stays
        # uncommitted and is read again by whoever owns the partition next.
        while True:
            try:
                await self._handle(work)
                return
            except asyncio.CancelledError:
                raise
            except OutcomeNotStored:
                # The provider was called; calling it again because the database was down would send twice.
                # The claim's lease runs out and lease recovery writes a new record, so this one is done.
                log.exception(
                    "delivery outcome not stored; its lease will be recovered",
                    extra={"notification_id": str(work.notification_id)},
                )
                return
            except Exception:
                log.exception(
                    "delivery raised; will retry", extra={"notification_id": str(work.notification_id)}
                )
                if not self._taking:
                    raise
                await asyncio.sleep(self._retry_delay_s)

    def _done(self, work: Work) -> None:
        self.handled += 1
        state = self._partitions.get(work.partition)
        if state is not None and state.generation == work.generation:
            state.outstanding.discard(work.offset)

    def stop_taking(self) -> None:
        """Start no more deliveries; buffered records stay uncommitted."""
        self._taking = False
        self._work_ready.set()

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for deliveries in flight; cancel the rest. Returns how many were cut."""
        if not self._in_flight:
            return 0
        _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return len(pending)
