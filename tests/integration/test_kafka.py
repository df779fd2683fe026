"""The Kafka adapters and the outbox relay against a real Tansu broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from notify.adapters.clock import SystemClock
from notify.adapters.kafka.consumer import PriorityConsumerLoop
from notify.adapters.kafka.publisher import KafkaDispatchPublisher, make_producer
from notify.adapters.kafka.queue import KafkaDispatchQueue, make_probe
from notify.adapters.kafka.topics import ensure_topics
from notify.adapters.postgres.store import PgNotificationStore, PgOutbox
from notify.app.dispatcher import PriorityDispatcher, Work
from notify.app.notifications import NewNotification, NotificationService
from notify.app.relay import OutboxRelay
from notify.devtools.tansu import TansuBroker
from notify.domain.model import Channel, Priority
from tests.support import eventually


def topics(prefix: str) -> list[str]:
    return [f"{prefix}.{p}" for p in ("high", "normal", "low")]


@pytest.fixture
async def created_topics(broker: TansuBroker, topic_prefix: str) -> list[str]:
    names = topics(topic_prefix)
    await ensure_topics(broker.bootstrap_servers, names, partitions=3)
    return names


async def consume_all(bootstrap: str, names: list[str], expected: int, timeout_s: float = 20) -> list[object]:
    consumer = AIOKafkaConsumer(
        *names, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=50
    )
    await consumer.start()
    records: list[object] = []
    try:

        async def enough() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for recs in batches.values():
                records.extend(recs)
            return len(records) >= expected

        await eventually(enough, timeout_s=timeout_s, what=f"{expected} records")
        await asyncio.sleep(0.3)  # and nothing more arrives
        for recs in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_ensure_topics_creates_the_partition_count_once(broker: TansuBroker, topic_prefix: str) -> None:
    names = topics(topic_prefix)
    assert sorted(await ensure_topics(broker.bootstrap_servers, names, partitions=5)) == sorted(names)
    assert await ensure_topics(broker.bootstrap_servers, names, partitions=5) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == dict.fromkeys(names, 5)


@pytest.fixture
async def relay_parts(
    pool: asyncpg.Pool, broker: TansuBroker, topic_prefix: str, created_topics: list[str]
) -> AsyncIterator[tuple[NotificationService, PgOutbox, KafkaDispatchPublisher]]:
    producer = make_producer(broker.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        publisher = KafkaDispatchPublisher(
            producer, lambda p: f"{topic_prefix}.{p}", f"{topic_prefix}.dlq", f"{topic_prefix}.status"
        )
        yield NotificationService(PgNotificationStore(pool), SystemClock()), PgOutbox(pool), publisher
    finally:
        await producer.stop()


async def test_relay_puts_each_notification_on_its_priority_topic(
    relay_parts: tuple[NotificationService, PgOutbox, KafkaDispatchPublisher],
    broker: TansuBroker,
    created_topics: list[str],
    topic_prefix: str,
) -> None:
    service, outbox, publisher = relay_parts
    made = {}
    for priority in Priority:
        n = await service.create(
            "t", NewNotification(Channel.PUSH, "tok", "x", priority=priority), correlation_id=f"c-{priority}"
        )
        made[n.id] = n
    relay = OutboxRelay(
        outbox, publisher, SystemClock(), batch_size=10, poll_interval_s=1, retention=timedelta(0)
    )
    assert await relay.drain() == 3
    assert await outbox.backlog() == 0
    records = await consume_all(broker.bootstrap_servers, created_topics, 3)
    assert len(records) == 3
    for r in records:
        nid = uuid.UUID(r.key.decode())  # type: ignore[attr-defined]
        n = made[nid]
        assert r.topic == f"{topic_prefix}.{n.priority.value}"  # type: ignore[attr-defined]
        headers = dict(r.headers)  # type: ignore[attr-defined]
        assert headers["notification_id"] == str(nid).encode()
        assert headers["correlation_id"] == f"c-{n.priority}".encode()
        assert json.loads(r.value)["channel"] == "push"  # type: ignore[attr-defined]


async def test_concurrent_relays_publish_each_record_once(
    relay_parts: tuple[NotificationService, PgOutbox, KafkaDispatchPublisher],
    broker: TansuBroker,
    created_topics: list[str],
) -> None:
    service, outbox, publisher = relay_parts
    for i in range(600):
        await service.create("t", NewNotification(Channel.PUSH, f"tok{i}", "x", priority=Priority.LOW))
    relays = [
        OutboxRelay(
            outbox, publisher, SystemClock(), batch_size=50, poll_interval_s=1, retention=timedelta(0)
        )
        for _ in range(4)
    ]
    sent = await asyncio.gather(*(r.drain() for r in relays))
    while await outbox.backlog():
        sent += await asyncio.gather(*(r.drain() for r in relays))
    assert sum(sent) == 600
    assert sum(1 for n in sent if n) > 1  # the work really was shared
    records = await consume_all(broker.bootstrap_servers, created_topics, 600)
    keys = [r.key for r in records]  # type: ignore[attr-defined]
    assert len(keys) == 600 == len(set(keys))


async def test_a_full_buffer_pauses_only_its_own_topic(
    broker: TansuBroker, topic_prefix: str, created_topics: list[str]
) -> None:
    """The worker's consume loop on a real broker: while the deliveries are stuck, low's buffer fills and only
    low's partitions are paused; a high record still gets in, and is the next one delivered."""
    high, normal, low = created_topics
    producer = make_producer(broker.bootstrap_servers, linger_ms=0)
    await producer.start()
    release = asyncio.Event()
    delivered: list[tuple[str, uuid.UUID | None]] = []

    async def handle(work: Work) -> None:
        await release.wait()
        delivered.append((work.partition.topic, work.notification_id))

    dispatcher = PriorityDispatcher(handle, concurrency=1, buffer_limit=5)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"{topic_prefix}.workers",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        request_timeout_ms=40_000,
    )
    loop = PriorityConsumerLoop(
        consumer,
        dispatcher,
        {high: Priority.HIGH, normal: Priority.NORMAL, low: Priority.LOW},
        commit_interval_s=0.2,
        shutdown_grace_s=1,
    )
    stop = asyncio.Event()
    running: asyncio.Task[None] | None = None
    try:
        running = asyncio.create_task(loop.run(stop))  # joins the group, then consumes
        lows = [uuid.uuid4() for _ in range(40)]
        for nid in lows:
            await producer.send_and_wait(low, b"{}", key=str(nid).encode())

        def paused_topics() -> set[str]:
            return {tp.topic for tp in consumer.paused()}

        async def low_is_full_and_paused() -> bool:
            return dispatcher.is_full(Priority.LOW) and paused_topics() == {low}

        await eventually(low_is_full_and_paused, what="low's buffer full and only its partitions paused")
        assert dispatcher.buffered(Priority.LOW) < 40  # it stopped fetching long before the end
        urgent = uuid.uuid4()
        await producer.send_and_wait(high, b"{}", key=str(urgent).encode())

        async def high_buffered() -> bool:
            return dispatcher.buffered(Priority.HIGH) == 1

        await eventually(high_buffered, what="the high record fetched while low stays paused")
        assert paused_topics() == {low}
        release.set()

        async def two_delivered() -> bool:
            return len(delivered) >= 2

        await eventually(two_delivered, what="deliveries once released")
        # The one delivery already in flight was a low one; the next is the high one, ahead of the buffer.
        assert delivered[0][0] == low and delivered[1] == (high, urgent)

        async def all_delivered() -> bool:
            return len(delivered) == 41

        await eventually(all_delivered, what="every record delivered")

        async def nothing_paused() -> bool:
            return paused_topics() == set()

        await eventually(nothing_paused, what="low resumed once its buffer drained")
        assert sorted(n for t, n in delivered if t == low) == sorted(lows)  # type: ignore[type-var]
    finally:
        stop.set()
        if running is not None:
            await running
        await consumer.stop()
        await producer.stop()


async def test_the_dispatch_queue_reports_what_waits_between_the_groups_commit_and_the_end(
    broker: TansuBroker, topic_prefix: str, created_topics: list[str]
) -> None:
    normal = created_topics[1]
    group = f"{topic_prefix}.workers"
    producer = make_producer(broker.bootstrap_servers, linger_ms=0)
    await producer.start()
    probe = make_probe(broker.bootstrap_servers, group)
    await probe.start()
    reader = AIOKafkaConsumer(
        normal,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        request_timeout_ms=40_000,
    )
    try:
        landed = [
            await producer.send_and_wait(normal, b"{}", key=str(uuid.uuid4()).encode(), partition=1)
            for _ in range(5)
        ]
        assert [m.offset for m in landed] == [0, 1, 2, 3, 4]
        queue = KafkaDispatchQueue(probe, lambda p: f"{topic_prefix}.{p}")
        waiting = {(w.priority, w.partition): (w.committed, w.end) for w in await queue.waiting() or []}
        assert len(waiting) == 9  # three partitions of each priority topic
        assert waiting[(Priority.NORMAL, 1)] == (0, 5)  # never committed: everything waits
        assert waiting[(Priority.HIGH, 0)] == (0, 0)
        await reader.start()
        await reader.commit({TopicPartition(normal, 1): 3})  # the group read the first three
        waiting = {(w.priority, w.partition): (w.committed, w.end) for w in await queue.waiting() or []}
        assert waiting[(Priority.NORMAL, 1)] == (3, 5)
    finally:
        await reader.stop()
        await probe.stop()
        await producer.stop()
