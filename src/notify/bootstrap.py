"""Composition roots: the one place each process builds its adapters from Settings and wires the use cases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notify.adapters.clock import SystemClock
from notify.adapters.http.app import SERVICES, TEMPLATES, ApiServices, create_app
from notify.adapters.http.auth import KeyRateLimiter
from notify.adapters.kafka.consumer import PriorityConsumerLoop
from notify.adapters.kafka.publisher import KafkaDispatchPublisher, make_producer
from notify.adapters.kafka.topics import ensure_topics
from notify.adapters.postgres.keys import PgApiKeyStore
from notify.adapters.postgres.pool import create_pool
from notify.adapters.postgres.store import PgNotificationStore, PgOutbox
from notify.adapters.postgres.templates import PgTemplateStore
from notify.adapters.provider.http import HttpProvider
from notify.adapters.resilience import AioCircuitBreaker, ChannelRateLimiter
from notify.app.auth import Authenticator
from notify.app.delivery import Deliverer, PauseCache, Route
from notify.app.dispatcher import PriorityDispatcher, Work
from notify.app.notifications import NotificationService
from notify.app.operations import Operations
from notify.app.recovery import Recovery
from notify.app.relay import OutboxRelay
from notify.app.templates import TemplateService
from notify.domain.model import Channel, Priority
from notify.domain.retry import RetryPolicy
from notify.ports.clock import Clock
from notify.settings import Settings

log = logging.getLogger(__name__)


def _all_topics(settings: Settings) -> list[str]:
    return settings.all_topics


async def _background(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    stop.set()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_relay(
    settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer, clock: Clock
) -> OutboxRelay:
    return OutboxRelay(
        PgOutbox(pool),
        KafkaDispatchPublisher(producer, settings.topic_for_priority, settings.dead_letter_topic),
        clock,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        retention=timedelta(seconds=settings.outbox_retention_s),
    )


def build_api_app(settings: Settings) -> web.Application:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        clock = SystemClock()
        pool = await create_pool(
            settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max
        )
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            _all_topics(settings),
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
        producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=settings.kafka_linger_ms)
        await producer.start()
        relay = build_relay(settings, pool, producer, clock)
        store = PgNotificationStore(pool)
        templates = TemplateService(PgTemplateStore(pool), clock)
        app[TEMPLATES] = templates
        service = NotificationService(
            store,
            clock,
            render=templates.render_for,
            max_retries=max_retries(settings),
            on_enqueued=relay.wake if settings.outbox_relay_enabled else None,
        )

        async def database_ready() -> None:
            await pool.fetchval("SELECT 1")

        async def kafka_ready() -> None:
            await producer.client.fetch_all_metadata()

        operations = Operations(
            store, clock, on_enqueued=relay.wake if settings.outbox_relay_enabled else None
        )
        app[SERVICES] = ApiServices(
            service,
            operations,
            Authenticator(PgApiKeyStore(pool), clock, cache_ttl_s=settings.api_key_cache_s),
            KeyRateLimiter(settings.api_key_rate_limit_per_s),
            {"database": database_ready, "kafka": kafka_ready},
        )
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if settings.outbox_relay_enabled:
            tasks.append(asyncio.create_task(relay.run(stop), name="outbox-relay"))
        log.info("api ready", extra={"relay": settings.outbox_relay_enabled})
        try:
            yield
        finally:
            await _background(stop, *tasks)
            await producer.stop()
            await pool.close()

    return create_app(settings.max_body_bytes, resources)


async def serve_api(settings: Settings, stop: asyncio.Event) -> None:
    # Long enough for the longest URL the API accepts (a 4096-character recipient filter, percent-encoded).
    runner = web.AppRunner(
        build_api_app(settings),
        access_log=None,
        handle_signals=False,
        max_line_size=65536,
        max_field_size=65536,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port)
        await site.start()
        log.info("api listening", extra={"url": f"http://{settings.api_host}:{settings.api_port}"})
        await stop.wait()
    finally:
        await runner.cleanup()


def max_retries(settings: Settings) -> dict[Priority, int]:
    return {
        Priority.HIGH: settings.max_retries_high,
        Priority.NORMAL: settings.max_retries_normal,
        Priority.LOW: settings.max_retries_low,
    }


def build_routes(settings: Settings, http: aiohttp.ClientSession) -> dict[Channel, list[Route]]:
    """Each channel's providers in failover order, each behind its own breaker (per channel and provider)."""
    return {
        channel: [
            Route(
                HttpProvider(p.name, p.url, http, timeout_s=p.timeout_s, hmac_secret=p.hmac_secret),
                AioCircuitBreaker(
                    f"{channel.value}:{p.name}",
                    fail_max=settings.breaker_fail_max,
                    reset_timeout_s=settings.breaker_reset_s,
                    half_open_max_calls=settings.breaker_half_open_calls,
                ),
            )
            for p in settings.providers_for(channel.value)
        ]
        for channel in Channel
    }


def _worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Consume and deliver until ``stop`` is set; then drain (bounded), commit and close everything."""
    clock = SystemClock()
    worker_id = _worker_id(settings)
    pool = await create_pool(
        settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max
    )
    http = aiohttp.ClientSession()
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=settings.kafka_linger_ms)
    consumer: AIOKafkaConsumer | None = None
    background_stop = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    try:
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            _all_topics(settings),
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
        await producer.start()
        store = PgNotificationStore(pool)
        # The worker relays too: what its recovery sweep re-enqueues is published at once, and delivery
        # keeps flowing while no API process runs.
        relay = build_relay(settings, pool, producer, clock)
        recovery = Recovery(
            store,
            clock,
            stale_pending=timedelta(seconds=settings.stale_pending_s),
            interval_s=settings.recovery_interval_s,
            on_enqueued=relay.wake,
        )
        deliverer = Deliverer(
            store,
            build_routes(settings, http),
            clock,
            worker_id=worker_id,
            lease=timedelta(seconds=settings.worker_lease_s),
            policy=RetryPolicy(
                base_s=settings.retry_base_s,
                cap_s=settings.retry_cap_s,
                max_retries=max_retries(settings),
            ),
            limiter=ChannelRateLimiter(settings.rate_limits()),
            pauses=PauseCache(store.paused_channels, clock, settings.pause_refresh_s),
        )

        async def handle(work: Work) -> None:
            assert work.notification_id is not None
            await deliverer.deliver(work.notification_id, work.channel)

        dispatcher = PriorityDispatcher(
            handle,
            concurrency=settings.worker_concurrency,
            per_channel_limit=settings.worker_concurrency_per_channel,
            buffer_limit=settings.worker_buffer_per_priority,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            # A group's first join on Tansu takes session_timeout/2: the request timeout must outlast it.
            request_timeout_ms=max(40_000, settings.kafka_session_timeout_ms + 5_000),
            max_poll_interval_ms=300_000,
        )
        priority_of = {settings.topic_for_priority(p.value): p for p in Priority}  # not the DLQ
        loop = PriorityConsumerLoop(
            consumer,
            dispatcher,
            priority_of,
            commit_interval_s=settings.worker_commit_interval_s,
            shutdown_grace_s=settings.worker_shutdown_grace_s,
        )
        loop.subscribe()
        if settings.outbox_relay_enabled:
            background.append(asyncio.create_task(relay.run(background_stop), name="outbox-relay"))
        background.append(asyncio.create_task(recovery.run(background_stop), name="recovery"))
        await consumer.start()
        log.info("worker started", extra={"worker_id": worker_id, "concurrency": settings.worker_concurrency})
        await loop.run(stop)
        log.info("worker stopped", extra={"worker_id": worker_id, "handled": dispatcher.handled})
    finally:
        await _background(background_stop, *background)
        if consumer is not None:
            await consumer.stop()
        await producer.stop()
        await http.close()
        await pool.close()
