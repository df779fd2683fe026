"""Reads the status topic in every API process and feeds the live hub.

Every process must see every event, so there is no consumer group to share the work: the consumer is
assigned all partitions of the topic and starts at their end (only what happens from now on is live), and it
commits nothing. This also spares the group join (on Tansu it takes half a session timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from notify.adapters.telemetry.metrics import STATUS_EVENTS
from notify.app.live import StatusHub
from notify.domain.events import StatusEvent

log = logging.getLogger(__name__)


def decode_event(value: bytes | None) -> StatusEvent | None:
    try:
        data: Any = json.loads(value or b"")
        return StatusEvent(
            notification_id=str(data["notification_id"]),
            tenant_id=str(data["tenant_id"]),
            batch_id=None if data.get("batch_id") is None else str(data["batch_id"]),
            channel=str(data["channel"]),
            status=str(data["status"]),
            previous_status=data.get("previous_status"),
            attempt=int(data.get("attempt") or 0),
            error=data.get("error"),
            provider=data.get("provider"),
            timestamp=str(data["timestamp"]),
            seq=int(data["seq"]),
            next_attempt_at=data.get("next_attempt_at"),
        )
    except (ValueError, KeyError, TypeError):
        return None


class StatusTopicReader:
    def __init__(self, make_consumer: Callable[[], AIOKafkaConsumer], topic: str, hub: StatusHub) -> None:
        """``make_consumer``: a new, unstarted consumer (from :func:`make_status_consumer`); the reader starts
        it, and makes another after the broker was unreachable at start."""
        self._make_consumer = make_consumer
        self._topic = topic
        self._hub = hub
        self.ready = asyncio.Event()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()  # loads metadata
        partitions = consumer.partitions_for_topic(self._topic) or set()
        if not partitions:
            raise KafkaError(f"topic {self._topic} has no partitions")
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``; a broker outage is logged and the reader starts again at the live end."""
        consumer: AIOKafkaConsumer | None = None
        try:
            while not stop.is_set():
                try:
                    if consumer is None:
                        consumer = self._make_consumer()
                        try:
                            await consumer.start()
                        except BaseException:
                            await consumer.stop()
                            consumer = None
                            raise
                    await self._relay(consumer, stop)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.ready.clear()
                    log.warning("status topic reader failed; retrying", extra={"error": repr(exc)})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            self.ready.clear()
            if consumer is not None:
                await consumer.stop()

    async def _relay(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        await self._assign(consumer)
        self.ready.set()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    STATUS_EVENTS.inc()
                    event = decode_event(record.value)
                    if event is None:
                        log.warning("unreadable status event skipped", extra={"offset": record.offset})
                        continue
                    self._hub.publish(event)


def make_status_consumer(bootstrap_servers: str, *, fetch_max_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
