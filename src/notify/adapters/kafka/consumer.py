"""The worker's Kafka side: one consumer in one group over the three priority topics.

Fetched records go to the PriorityDispatcher (notify.app.dispatcher), which decides what to deliver next. This
loop pauses a topic's partitions while that priority's buffer is full, and commits the offsets the
dispatcher allows (only those whose outcome is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from notify.app.dispatcher import Partition, PriorityDispatcher
from notify.domain.model import Priority

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 5.0
COMMIT_BACKOFF_S = 30.0


def _partition(tp: TopicPartition) -> Partition:
    return Partition(tp.topic, tp.partition)


def _header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def _notification_id(key: bytes | None) -> UUID | None:
    if key is None:
        return None
    try:
        return UUID(key.decode())
    except (UnicodeDecodeError, ValueError):
        return None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: PriorityConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Commit what is finished on the partitions we are losing, then hand their buffered records over.
        await self._loop.commit({_partition(tp) for tp in revoked})
        self._loop.dispatcher.revoke(_partition(tp) for tp in revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(f"{t.topic}:{t.partition}" for t in assigned)}
        )


class PriorityConsumerLoop:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dispatcher: PriorityDispatcher,
        priority_of_topic: Mapping[str, Priority],
        *,
        commit_interval_s: float,
        shutdown_grace_s: float,
    ) -> None:
        self.consumer = consumer
        self.dispatcher = dispatcher
        self._priority_of = dict(priority_of_topic)
        self._commit_interval_s = commit_interval_s
        self._commit_pause_until = 0.0  # after a commit timed out: commits back off, fetching goes on
        self._grace_s = shutdown_grace_s
        self.ready = asyncio.Event()

    async def commit(self, only: set[Partition] | None = None) -> None:
        offsets = self.dispatcher.commit_offsets(only)
        if not offsets:
            return
        try:
            # Bounded: aiokafka retries some commit errors without end (e.g. UnknownTopicOrPartition after a
            # broker restart lost the topics), which would stall fetching and rejoining with it.
            await asyncio.wait_for(
                self.consumer.commit({TopicPartition(p.topic, p.partition): o for p, o in offsets.items()}),
                timeout=COMMIT_TIMEOUT_S,
            )
        except TimeoutError:
            # Nothing is lost by committing later: uncommitted records are read again and the claim skips
            # what was already delivered. Back off so the consume loop does not spend its time waiting here.
            self._commit_pause_until = time.monotonic() + COMMIT_BACKOFF_S
            log.warning(
                "offset commit timed out; records stay uncommitted (read again later, skipped by the claim)",
                extra={"retry_in_s": COMMIT_BACKOFF_S},
            )
            return
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the new owner re-reads from the last commit and skips what
            # we already delivered (it is no longer claimable).
            log.warning("offset commit failed", extra={"error": repr(exc)})
            return
        self.dispatcher.mark_committed(offsets)

    def _apply_backpressure(self) -> None:
        # Recomputed from the live assignment each pass, so partitions gained in a rebalance are covered.
        paused = self.consumer.paused()
        to_pause, to_resume = [], []
        for tp in self.consumer.assignment():
            full = self.dispatcher.is_full(self._priority_of[tp.topic])
            if full and tp not in paused:
                to_pause.append(tp)
            elif not full and tp in paused:
                to_resume.append(tp)
        if to_pause:
            self.consumer.pause(*to_pause)
        if to_resume:
            self.consumer.resume(*to_resume)

    async def run(self, stop: asyncio.Event) -> None:
        """Join the group, consume until ``stop`` is set, then drain in-flight deliveries (bounded) and
        commit. The consumer is stopped by its owner."""
        self.consumer.subscribe(topics=list(self._priority_of), listener=_Rebalance(self))
        await self.consumer.start()
        dispatch = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        last_commit = time.monotonic()
        self.ready.set()
        try:
            while not stop.is_set():
                if dispatch.done():
                    dispatch.result()  # surface a crash of the dispatcher
                batches = await self.consumer.getmany(timeout_ms=100, max_records=500)
                for tp, records in batches.items():
                    priority = self._priority_of[tp.topic]
                    partition = _partition(tp)
                    for record in records:
                        self.dispatcher.offer(
                            partition,
                            record.offset,
                            priority,
                            _notification_id(record.key),
                            _header(record.headers, "channel"),
                            trace_context=_header(record.headers, "traceparent"),
                            correlation_id=_header(record.headers, "correlation_id"),
                            tenant_id=_header(record.headers, "tenant_id"),
                        )
                self._apply_backpressure()
                now = time.monotonic()
                if now - last_commit >= self._commit_interval_s and now >= self._commit_pause_until:
                    await self.commit()
                    last_commit = time.monotonic()
        finally:
            self.dispatcher.stop_taking()
            cut = await self.dispatcher.drain(self._grace_s)
            dispatch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatch
            await self.commit()
            log.info("consumer stopped", extra={"handled": self.dispatcher.handled, "cut_short": cut})
