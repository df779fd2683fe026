"""The outbox relay: publishes committed outbox records to Kafka and marks them published.

Any number of relays may run (one per API process): each locks the rows it publishes with
``FOR UPDATE SKIP LOCKED``, so in the normal case no record is published twice. A relay that dies between
publish and commit leaves its rows unmarked; another publishes them again, and the worker's conditional claim
makes the duplicate harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from notify.ports.clock import Clock
from notify.ports.publisher import DispatchPublisher
from notify.ports.store import Outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        publisher: DispatchPublisher,
        clock: Clock,
        *,
        batch_size: int,
        poll_interval_s: float,
        retention: timedelta,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask for a pass now (called after a commit that wrote outbox records)."""
        self._wake.set()

    async def drain(self) -> int:
        """Publish until nothing is left (or another relay holds the rest). Returns how many were sent."""
        sent = 0
        while True:
            n = await self._outbox.relay_batch(self._batch_size, self._publisher.publish, self._clock.now())
            sent += n
            if n < self._batch_size:
                break
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        last_purge = self._clock.now()
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.drain()
                failures = 0
                if self._clock.now() - last_purge > timedelta(minutes=1):
                    await self._outbox.purge_published(self._clock.now() - self._retention)
                    last_purge = self._clock.now()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("outbox relay pass failed; records stay queued and are retried")
            delay = self._poll_interval_s if failures == 0 else min(5.0, 0.2 * 2**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self._wake, stop), timeout=delay)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
