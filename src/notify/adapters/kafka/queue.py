"""Where the worker group stands on the priority topics, per partition: the ``DispatchQueue`` port.

A consumer of the workers' group that never joins it (it assigns itself every partition, and never
commits) reads the group's committed offsets and each partition's high watermark: the records between the
two wait to be read.

The high watermark comes from a fetch response, not from ListOffsets: Tansu answers ListOffsets(latest)
with the start of the partition's last record batch, short of the real end by up to a whole batch, which
would make records of that batch look lost. The fetches are tiny (``max_partition_fetch_bytes``) and start
at the committed offset, so they also prove that offset is still readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from notify.adapters.kafka.connection import KafkaConnection, connection_of
from notify.domain.model import Priority
from notify.ports.queue import Waiting

_TIMEOUT_S = 5.0
_FETCH_ROUNDS = 5


class KafkaDispatchQueue:
    def __init__(self, probe: AIOKafkaConsumer, topic_for_priority: Callable[[str], str]) -> None:
        """``probe``: from :func:`make_probe`, started."""
        self._probe = probe
        self._topics: Mapping[str, Priority] = {topic_for_priority(p.value): p for p in Priority}

    async def waiting(self) -> list[Waiting] | None:
        try:
            return await asyncio.wait_for(self._read(), _TIMEOUT_S)
        except TimeoutError:
            return None

    async def _read(self) -> list[Waiting] | None:
        await self._probe.topics()  # refreshes the metadata: a recreated topic may have new partitions
        partitions = {
            TopicPartition(topic, p)
            for topic in self._topics
            for p in self._probe.partitions_for_topic(topic) or ()
        }
        if not partitions:
            return None
        if set(self._probe.assignment()) != partitions:
            self._probe.assign(list(partitions))
        committed: dict[TopicPartition, int] = {}
        for tp in partitions:
            offset = await self._probe.committed(tp)
            committed[tp] = offset if offset is not None else 0  # never committed: read from the start
            self._probe.seek(tp, committed[tp])
        # Fetch responses carry each partition's high watermark; a few small fetches cover every partition.
        marks: dict[TopicPartition, int] = {}
        for _ in range(_FETCH_ROUNDS):
            await self._probe.getmany(timeout_ms=100, max_records=1)
            marks = {tp: hw for tp in partitions if (hw := self._probe.highwater(tp)) is not None}
            if len(marks) == len(partitions):
                break
        # A partition whose end is unknown is left out: nothing on it counts as lost this time.
        return [
            Waiting(self._topics[tp.topic], tp.partition, committed[tp], end) for tp, end in marks.items()
        ]


def make_probe(servers: str | KafkaConnection, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **connection_of(servers).options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1024,  # it reads the high watermark, not the records
        fetch_max_wait_ms=20,
        request_timeout_ms=15000,
    )
