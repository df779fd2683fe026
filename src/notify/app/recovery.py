"""Periodic sweeps that keep every accepted notification moving, safe under many workers:
due scheduled sends, leases of dead workers, and pending notifications whose Kafka record was lost.

"Lost" is decided with the broker's help: a notification pending for ``stale_pending`` whose dispatch record
is still waiting in its partition (behind consumer lag) is left alone; re-enqueueing it would only add a
duplicate that every worker must read and drop, and under a backlog that feeds itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from notify.ports.clock import Clock
from notify.ports.queue import DispatchQueue, Waiting
from notify.ports.store import Sweeps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    released: int  # scheduled sends whose time came
    retries: int  # retries whose backoff ran out
    recovered: int  # leases of dead workers
    unparked: int  # notifications of channels that were resumed
    requeued: int  # pending ones whose Kafka record was lost

    @property
    def enqueued(self) -> int:
        return self.released + self.retries + self.recovered + self.unparked + self.requeued


class Recovery:
    def __init__(
        self,
        store: Sweeps,
        clock: Clock,
        *,
        stale_pending: timedelta,
        interval_s: float,
        batch_size: int = 500,
        on_enqueued: Callable[[], None] | None = None,
        queue: DispatchQueue | None = None,
    ) -> None:
        """Without a ``queue`` nothing can show a record lost, so no stale notification is re-enqueued."""
        self._store = store
        self._clock = clock
        self._stale_pending = stale_pending
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._on_enqueued = on_enqueued or (lambda: None)
        self._queue = queue
        # How long a picture of the partitions is used: far shorter than stale_pending, so a record counted
        # as stale was published long before the picture was taken.
        self._waiting_ttl = timedelta(seconds=min(5.0, stale_pending.total_seconds() / 4))
        self._waiting: tuple[datetime, Sequence[Waiting] | None] | None = None

    async def _waiting_records(self, now: datetime) -> Sequence[Waiting] | None:
        if self._queue is None:
            return None
        if self._waiting is None or now - self._waiting[0] >= self._waiting_ttl:
            try:
                self._waiting = (now, await self._queue.waiting())
            except Exception:
                log.warning("could not read the partitions' positions; nothing is counted as lost for now")
                self._waiting = (now, None)
        return self._waiting[1]

    async def sweep(self) -> SweepResult:
        now = self._clock.now()
        stale_before = now - self._stale_pending
        waiting = await self._waiting_records(now)
        result = SweepResult(
            released=await self._store.release_due_scheduled(now, self._batch_size),
            retries=await self._store.release_due_retries(now, self._batch_size, stale_before, waiting),
            recovered=await self._store.recover_expired_leases(now, self._batch_size),
            unparked=await self._store.requeue_parked(now, self._batch_size),
            requeued=0
            if waiting is None
            else await self._store.requeue_stale_pending(stale_before, now, self._batch_size, waiting),
        )
        if result.enqueued:
            self._on_enqueued()
        if result.recovered or result.requeued:
            log.warning(
                "recovered notifications",
                extra={"recovered_leases": result.recovered, "requeued_stale": result.requeued},
            )
        return result

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovery sweep failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
