"""The API's status topic reader against a real Tansu broker: what it relays to the live hub."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from notify.adapters.kafka.publisher import status_value
from notify.adapters.kafka.status import StatusTopicReader, make_status_consumer
from notify.adapters.kafka.topics import ensure_topics
from notify.app.live import LiveHub, Subscriber
from notify.devtools.tansu import TansuBroker
from notify.domain.model import Channel, Priority
from notify.domain.outbox import OutboxKind, OutboxRecord
from tests.support import eventually

TENANT = "tenant-a"


def status_record(seq: int) -> OutboxRecord:
    notification_id = uuid.uuid4()
    now = datetime.now(UTC)
    return OutboxRecord(
        id=seq,
        notification_id=notification_id,
        priority=Priority.NORMAL,
        channel=Channel.SMS,
        correlation_id=None,
        created_at=now,
        kind=OutboxKind.STATUS,
        payload={
            "notification_id": str(notification_id),
            "tenant_id": TENANT,
            "batch_id": None,
            "channel": "sms",
            "status": "delivered",
            "previous_status": "processing",
            "attempt": 1,
            "error": None,
            "provider": "primary",
            "timestamp": now.isoformat(),
        },
    )


def publish_while_the_loop_is_blocked(bootstrap: str, topic: str, records: list[OutboxRecord]) -> None:
    """Create ``topic`` if missing and publish ``records`` from another thread, blocking this event loop
    meanwhile: whatever runs on it (the reader) cannot act until the records are on the broker."""

    async def publish() -> None:
        await ensure_topics(bootstrap, [topic], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(
                    topic, status_value(record), key=str(record.notification_id).encode()
                )
        finally:
            await producer.stop()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish()).result()


async def drain(subscriber: Subscriber, into: list[str], expected: int) -> None:
    async def enough() -> bool:
        while subscriber.pending:
            message = await subscriber.next()
            assert message is not None
            into.append(message["notification_id"])
        return len(into) >= expected

    await eventually(enough, what=f"{expected} live events", timeout_s=30)


async def test_an_unreadable_status_event_is_skipped_and_the_ones_after_it_are_relayed(
    broker: TansuBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.status"
    hub = LiveHub(capacity=1000)
    subscriber = hub.connect(TENANT)
    reader = StatusTopicReader(
        lambda: make_status_consumer(broker.bootstrap_servers, fetch_max_wait_ms=50), topic, hub
    )
    await ensure_topics(broker.bootstrap_servers, [topic], partitions=1)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    first, last = status_record(1), status_record(4)
    try:
        await eventually(lambda: asyncio.sleep(0, reader.ready.is_set()), what="the reader at the end")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, status_value(first))
            await producer.send_and_wait(topic, b"{not json")  # not JSON
            await producer.send_and_wait(topic, b'{"status": "delivered", "seq": 3}')  # JSON, not an event
            await producer.send_and_wait(topic, status_value(last))
        finally:
            await producer.stop()
        seen: list[str] = []
        await drain(subscriber, seen, 2)
        assert seen == [str(first.notification_id), str(last.notification_id)]
    finally:
        stop.set()
        await task


@pytest.mark.e2e  # starts its own broker, to crash it
async def test_events_published_after_a_broker_restart_reach_the_hub_before_the_reader_notices() -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.status"
    with TansuBroker() as broker:
        await ensure_topics(broker.bootstrap_servers, [topic], partitions=1)
        hub = LiveHub(capacity=1000)
        subscriber = hub.connect(TENANT)
        reader = StatusTopicReader(
            lambda: make_status_consumer(broker.bootstrap_servers, fetch_max_wait_ms=50), topic, hub
        )
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop))
        try:
            await eventually(lambda: asyncio.sleep(0, reader.ready.is_set()), what="the reader at the end")
            before = [status_record(seq) for seq in range(1, 11)]
            publish_while_the_loop_is_blocked(broker.bootstrap_servers, topic, before)
            seen: list[str] = []
            await drain(subscriber, seen, 10)
            assert seen == [str(r.notification_id) for r in before]

            # The broker loses everything (Tansu is memory-only). Fewer events than the reader had read are
            # published to the new, empty topic before the reader can notice: its position is now past the
            # end, and every one of those events is new to it.
            broker.restart(crash=True)
            after = [status_record(seq) for seq in range(11, 16)]
            publish_while_the_loop_is_blocked(broker.bootstrap_servers, topic, after)
            await drain(subscriber, seen, 15)
            assert seen[10:] == [str(r.notification_id) for r in after]
        finally:
            stop.set()
            await task
