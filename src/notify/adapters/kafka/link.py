"""The API process's connection to Kafka, made in the background and made again after a failure.

Accepting a notification needs PostgreSQL only: the outbox is the buffer. So the API starts, answers and
accepts while Kafka is unreachable, and this link keeps trying; the relay publishes once it is up (until
then its passes fail and the records wait), and the live status reader starts reading then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from notify.domain.errors import Unavailable

log = logging.getLogger(__name__)


class KafkaLink:
    def __init__(
        self,
        make_producer: Callable[[], AIOKafkaProducer],
        prepare: Callable[[], Awaitable[object]],
        *,
        retry_max_s: float = 10.0,
    ) -> None:
        """``prepare``: what must succeed first (creating the topics); ``make_producer``: a new, unstarted
        producer (one that failed to start is not started again)."""
        self._make_producer = make_producer
        self._prepare = prepare
        self._retry_max_s = retry_max_s
        self._producer: AIOKafkaProducer | None = None
        self.up = asyncio.Event()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise Unavailable("Kafka is not reachable yet; the records wait in the outbox.")
        return self._producer

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying with backoff) unless ``stop`` comes first; returns once connected."""
        delay = 0.5
        while not stop.is_set():
            producer = self._make_producer()
            try:
                await self._prepare()
                await producer.start()
            except asyncio.CancelledError:
                await producer.stop()
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning(
                    "kafka is not reachable; accepting anyway, the outbox keeps what is accepted",
                    extra={"error": repr(exc), "retry_in_s": delay},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(self._retry_max_s, delay * 2)
                continue
            self._producer = producer
            self.up.set()
            log.info("kafka connected")
            return

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
            self.up.clear()
