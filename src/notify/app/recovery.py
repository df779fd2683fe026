"""Periodic sweeps that keep every accepted notification moving, safe under many workers:
due scheduled sends, leases of dead workers, and pending notifications whose Kafka record was lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from notify.ports.clock import Clock
from notify.ports.store import NotificationStore

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
        store: NotificationStore,
        clock: Clock,
        *,
        stale_pending: timedelta,
        interval_s: float,
        batch_size: int = 500,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._stale_pending = stale_pending
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._on_enqueued = on_enqueued or (lambda: None)

    async def sweep(self) -> SweepResult:
        now = self._clock.now()
        result = SweepResult(
            released=await self._store.release_due_scheduled(now, self._batch_size),
            retries=await self._store.release_due_retries(now, self._batch_size, now - self._stale_pending),
            recovered=await self._store.recover_expired_leases(now, self._batch_size),
            unparked=await self._store.requeue_parked(now, self._batch_size),
            requeued=await self._store.requeue_stale_pending(
                now - self._stale_pending, now, self._batch_size
            ),
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
