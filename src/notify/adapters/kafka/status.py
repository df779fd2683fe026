"""Reads the status topic in every API process and feeds the live hub.

Every process must see every event, so there is no consumer group to share the work: the consumer is
assigned all partitions of the topic and starts at their end (only what happens from now on is live), and it
commits nothing. This also spares the group join (on Tansu it takes half a session timeout).

A broker that lost its data (Tansu is memory-only; a Kafka topic deleted and made again) leaves the reader's
position past the end of the new, shorter log. Kafka answers such a fetch with an out-of-range error and
the consumer resets to the earliest record; Tansu answers it with nothing, forever (until the new log grows
past the old position, and then everything before it is skipped). So the reader also compares its position
with the log's end every few seconds and, if it is past it, reads the new log from its start: every record
there was published after the loss, so none of them has been seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from notify.adapters.kafka.connection import KafkaConnection, connection_of
from notify.adapters.telemetry.metrics import STATUS_EVENTS
from notify.app.live import LiveHub
from notify.domain.events import StatusEvent

log = logging.getLogger(__name__)


def decode_event(value: bytes | None) -> StatusEvent | None:
    try:
        # orjson: the API decodes every status event of the deployment, in less than half the time json takes.
        data: Any = orjson.loads(value or b"")
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
            priority=data.get("priority"),
            event_id=None if data.get("event_id") is None else int(data["event_id"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


class StatusTopicReader:
    def __init__(
        self,
        make_consumer: Callable[[], AIOKafkaConsumer],
        topic: str,
        hub: LiveHub,
        *,
        lost_log_check_s: float = 2.0,
    ) -> None:
        """``make_consumer``: a new, unstarted consumer (from :func:`make_status_consumer`); the reader starts
        it, and makes another after the broker was unreachable at start. ``lost_log_check_s``: how often the
        position is compared with the log's end (see the module's docstring)."""
        self._make_consumer = make_consumer
        self._topic = topic
        self._hub = hub
        self._lost_log_check_s = lost_log_check_s
        self.ready = asyncio.Event()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        await consumer.topics()  # loads metadata
        partitions = consumer.partitions_for_topic(self._topic) or set()
        if not partitions:
            raise KafkaError(f"topic {self._topic} has no partitions")
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        return assigned

    async def _rewind_past_the_end(
        self, consumer: AIOKafkaConsumer, assigned: list[TopicPartition], rewound: dict[TopicPartition, int]
    ) -> None:
        ends = await consumer.end_offsets(assigned)
        for partition in assigned:
            position = await consumer.position(partition)
            # Once per end offset: Tansu can report an end one short of what it already served, and re-reading
            # would not change that (a log that really was lost has a new, growing end).
            if position > ends[partition] and rewound.get(partition) != ends[partition]:
                rewound[partition] = ends[partition]
                log.warning(
                    "the status topic is shorter than what was read: the broker lost its data; "
                    "reading the new log from its start",
                    extra={"partition": partition.partition, "position": position, "end": ends[partition]},
                )
                await consumer.seek_to_beginning(partition)

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
        assigned = await self._assign(consumer)
        self.ready.set()
        next_check = time.monotonic() + self._lost_log_check_s
        rewound: dict[TopicPartition, int] = {}
        while not stop.is_set():
            if time.monotonic() >= next_check:
                await self._rewind_past_the_end(consumer, assigned, rewound)
                next_check = time.monotonic() + self._lost_log_check_s
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batches.values():
                for record in records:
                    STATUS_EVENTS.inc()
                    event = decode_event(record.value)
                    if event is None:
                        log.warning("unreadable status event skipped", extra={"offset": record.offset})
                        continue
                    self._hub.publish(event)


def make_status_consumer(servers: str | KafkaConnection, *, fetch_max_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **connection_of(servers).options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a lost position only (see above): the start seeks to the end itself
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
