"""Publishes outbox records: dispatches to ``<prefix>.<priority>``, dead letters to ``<prefix>.dlq``, status
events to ``<prefix>.status``; key = notification id, so one notification's records stay in order on one
partition. The W3C trace context travels in the ``traceparent`` header."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind

from notify.adapters.kafka.connection import KafkaConnection, connection_of
from notify.adapters.telemetry.metrics import OUTBOX_PUBLISHED
from notify.adapters.telemetry.tracing import current_traceparent, span_in
from notify.domain.outbox import OutboxKind, OutboxRecord
from notify.ports.queue import Position


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


def status_value(record: OutboxRecord) -> bytes:
    # ``seq`` (the outbox id) grows with every event: a relay reading the topic can drop a re-published one.
    event: dict[str, Any] = {**(record.payload or {}), "seq": record.id}
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def dispatch_headers(record: OutboxRecord, traceparent: str | None) -> list[tuple[str, bytes]]:
    headers = [
        ("notification_id", str(record.notification_id).encode()),
        ("channel", record.channel.value.encode()),
        ("priority", record.priority.value.encode()),
    ]
    if record.tenant_id:
        headers.append(("tenant_id", record.tenant_id.encode()))
    if record.correlation_id:
        headers.append(("correlation_id", record.correlation_id.encode()))
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


class KafkaDispatchPublisher:
    def __init__(
        self,
        producer: AIOKafkaProducer | Callable[[], AIOKafkaProducer],
        topic_for_priority: Callable[[str], str],
        dead_letter_topic: str,
        status_topic: str,
    ) -> None:
        """``producer``: a started producer, or a function giving the current one (raising Unavailable
        while there is none, see KafkaLink)."""
        self._current = producer if callable(producer) else (lambda: producer)
        self._topic_for = topic_for_priority
        self._dead_letter_topic = dead_letter_topic
        self._status_topic = status_topic

    def topic(self, record: OutboxRecord) -> str:
        if record.kind is OutboxKind.DEAD_LETTER:
            return self._dead_letter_topic
        if record.kind is OutboxKind.STATUS:
            return self._status_topic
        return self._topic_for(record.priority.value)

    async def _send(self, record: OutboxRecord) -> asyncio.Future[Any]:
        topic = self.topic(record)
        key = str(record.notification_id).encode()
        if record.kind is OutboxKind.STATUS:
            # Events only carry the notification's trace along; they are not steps of it.
            value, headers = status_value(record), dispatch_headers(record, record.trace_context)
            sent: asyncio.Future[Any] = await self._current().send(
                topic, value=value, key=key, headers=headers
            )
            return sent
        # A producer span per publish, child of the notification's stored context; the worker's delivery
        # span becomes its child through the header.
        with span_in(
            f"{topic} publish",
            record.trace_context,
            SpanKind.PRODUCER,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation.type": "publish",
                "notification.id": str(record.notification_id),
                "notify.outbox_id": record.id,
            },
        ):
            headers = dispatch_headers(record, current_traceparent() or record.trace_context)
            future: asyncio.Future[Any] = await self._current().send(
                topic, value=dispatch_value(record), key=key, headers=headers
            )
            return future

    async def publish(self, records: Sequence[OutboxRecord]) -> list[Position]:
        # send() only appends to the producer's batch; awaiting every delivery future afterwards lets the
        # whole relay batch travel in a few produce requests instead of one round trip per record.
        futures = [await self._send(r) for r in records]
        landed = await asyncio.gather(*futures)
        OUTBOX_PUBLISHED.inc(len(records))
        return [Position(m.partition, m.offset) for m in landed]


def make_producer(servers: str | KafkaConnection, *, linger_ms: int) -> AIOKafkaProducer:
    # enable_idempotence stays off: Tansu rejects InitProducerId, and correctness does not depend on it
    # (PostgreSQL is the source of truth; the worker's conditional claim drops duplicates).
    return AIOKafkaProducer(
        **connection_of(servers).options(),
        acks="all",
        linger_ms=linger_ms,
        enable_idempotence=False,
        request_timeout_ms=15000,
    )
