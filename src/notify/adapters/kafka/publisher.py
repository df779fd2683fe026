"""Publishes dispatch records to ``<prefix>.<priority>``; key = notification id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from notify.ports.store import OutboxKind, OutboxRecord


def dispatch_value(record: OutboxRecord) -> bytes:
    return json.dumps(
        {
            "notification_id": str(record.notification_id),
            "priority": record.priority.value,
            "channel": record.channel.value,
            "outbox_id": record.id,
            "kind": record.kind.value,
        },
        separators=(",", ":"),
    ).encode()


def dispatch_headers(record: OutboxRecord) -> list[tuple[str, bytes]]:
    headers = [
        ("notification_id", str(record.notification_id).encode()),
        ("channel", record.channel.value.encode()),
        ("priority", record.priority.value.encode()),
    ]
    if record.correlation_id:
        headers.append(("correlation_id", record.correlation_id.encode()))
    return headers


class KafkaDispatchPublisher:
    def __init__(
        self, producer: AIOKafkaProducer, topic_for_priority: Callable[[str], str], dead_letter_topic: str
    ) -> None:
        self._producer = producer
        self._topic_for = topic_for_priority
        self._dead_letter_topic = dead_letter_topic

    def topic(self, record: OutboxRecord) -> str:
        if record.kind is OutboxKind.DEAD_LETTER:
            return self._dead_letter_topic
        return self._topic_for(record.priority.value)

    async def publish(self, records: Sequence[OutboxRecord]) -> None:
        # send() only appends to the producer's batch; awaiting every delivery future afterwards lets the
        # whole relay batch travel in a few produce requests instead of one round trip per record.
        futures = [
            await self._producer.send(
                self.topic(r),
                value=dispatch_value(r),
                key=str(r.notification_id).encode(),
                headers=dispatch_headers(r),
            )
            for r in records
        ]
        await asyncio.gather(*futures)


def make_producer(bootstrap_servers: str, *, linger_ms: int) -> AIOKafkaProducer:
    # enable_idempotence stays off: Tansu rejects InitProducerId, and correctness does not depend on it
    # (PostgreSQL is the source of truth; the worker's conditional claim drops duplicates).
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=linger_ms,
        enable_idempotence=False,
        request_timeout_ms=15000,
    )
