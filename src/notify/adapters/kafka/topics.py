"""Create notify's topics before anything else touches them.

Tansu (and Kafka with auto-create on) creates an unknown topic with a default partition count on any metadata
request naming it, so topics are created explicitly, with the partition count configured, at startup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from notify.adapters.kafka.connection import KafkaConnection, connection_of

log = logging.getLogger(__name__)


async def ensure_topics(
    servers: str | KafkaConnection, topics: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create whichever of ``topics`` are missing. Returns the ones this call created."""
    admin = AIOKafkaAdminClient(**connection_of(servers).options(), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor)
                    for t in missing
                ]
            )
            # Error 36 (TOPIC_ALREADY_EXISTS) means another process won the race: fine.
            for topic_errors in getattr(response, "topic_errors", []):
                name, code = topic_errors[0], topic_errors[1]
                if code not in (0, 36):
                    raise RuntimeError(f"could not create topic {name}: Kafka error {code}")
            log.info("created topics", extra={"topics": missing, "partitions": partitions})
        return missing
    finally:
        await admin.close()
