"""Composition roots: the one place each process builds its adapters from Settings and wires the use cases."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from uuid import UUID

import aiohttp
import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.fernet import Fernet
from pydantic import TypeAdapter

from notify.adapters.clock import SystemClock
from notify.adapters.cluster_limits import ClusterRateLimiter, LeasedTokens
from notify.adapters.http.app import create_app, create_worker_app
from notify.adapters.http.auth import FailedAuthLimiter, KeyLimiter, KeyRateLimiter, SharedKeyRateLimiter
from notify.adapters.http.callbacks import CALLBACKS, Callbacks, SesCallback, TwilioCallback
from notify.adapters.http.console import CONSOLE, Console, SessionCookies
from notify.adapters.http.errors import REQUEST_DEADLINE_S, UNAVAILABLE_ERRORS
from notify.adapters.http.live import LiveEndpoint
from notify.adapters.http.state import (
    LIVE,
    RECEIPTS,
    RETENTION,
    ROUND_BUDGET_S,
    SERVICES,
    STATS,
    TEMPLATES,
    TENANT_PROVIDERS,
    WEBHOOKS,
    ApiServices,
)
from notify.adapters.kafka.connection import KafkaConnection
from notify.adapters.kafka.consumer import PriorityConsumerLoop
from notify.adapters.kafka.link import KafkaLink
from notify.adapters.kafka.publisher import KafkaDispatchPublisher, make_producer
from notify.adapters.kafka.queue import KafkaDispatchQueue, make_probe
from notify.adapters.kafka.status import StatusTopicReader, make_status_consumer
from notify.adapters.kafka.topics import ensure_topics
from notify.adapters.postgres.events import PgStatusEvents
from notify.adapters.postgres.keys import PgApiKeyStore
from notify.adapters.postgres.ledger import PgDeliveryLedger
from notify.adapters.postgres.notifications import PgNotifications
from notify.adapters.postgres.operator import PgOperatorActions
from notify.adapters.postgres.outbox import PgOutbox
from notify.adapters.postgres.overview import PgOverview, PgWorkerReports
from notify.adapters.postgres.pool import POSTGRES_UNAVAILABLE, create_pool
from notify.adapters.postgres.rate_buckets import PgTokenBuckets
from notify.adapters.postgres.receipts import PgReceipts
from notify.adapters.postgres.retention import PgRetention
from notify.adapters.postgres.stats import PgDeliveryStats
from notify.adapters.postgres.sweeps import PgSweeps
from notify.adapters.postgres.templates import PgTemplateStore
from notify.adapters.postgres.tenant_providers import PgTenantProviders
from notify.adapters.postgres.webhooks import PgWebhookEndpoints, PgWebhookQueue
from notify.adapters.provider.apns import APNS_PRODUCTION, APNS_SANDBOX, ApnsConfig, ApnsProvider
from notify.adapters.provider.fcm import FcmProvider, ServiceAccount
from notify.adapters.provider.http import HttpProvider
from notify.adapters.provider.ses import SesConfig, SesProvider
from notify.adapters.provider.smtp import SmtpConfig, SmtpProvider
from notify.adapters.provider.sns import SnsVerifier
from notify.adapters.provider.twilio import TwilioConfig, TwilioProvider
from notify.adapters.resilience import AioCircuitBreaker, ChannelRateLimiter
from notify.adapters.telemetry import metrics
from notify.adapters.telemetry.delivery_hooks import delivery_hooks
from notify.adapters.telemetry.tracing import OtelTraceContexts
from notify.adapters.templates.isolated import IsolatedTemplateEngine
from notify.adapters.webhook_sender import HttpWebhookSender
from notify.app.admission import Admission
from notify.app.auth import Authenticator, KeyService
from notify.app.delivery import Deliverer, PauseCache, Route
from notify.app.dispatcher import PriorityDispatcher
from notify.app.live import LiveHub
from notify.app.notifications import NotificationService
from notify.app.operations import Operations
from notify.app.overview import OverviewService
from notify.app.receipts import ReceiptService
from notify.app.recovery import Recovery
from notify.app.relay import OutboxRelay
from notify.app.retention import RetentionService
from notify.app.stats import StatsService
from notify.app.templates import TemplateService
from notify.app.tenant_providers import TenantProviders, TenantRoutes
from notify.app.webhooks import WebhookDispatcher, WebhookPolicy, WebhookService
from notify.app.worker import BackgroundJob, Worker, WorkerLimits
from notify.domain.errors import Overloaded, Unavailable
from notify.domain.model import Channel, Priority
from notify.domain.retry import RetryPolicy
from notify.ports.clock import Clock
from notify.ports.overview import WorkerReport
from notify.ports.provider import DeliveryProvider
from notify.ports.resilience import RateLimiter
from notify.settings import (
    AnyProvider,
    AnyProviderSettings,
    ApnsProviderSettings,
    FcmProviderSettings,
    SesProviderSettings,
    Settings,
    SmtpProviderSettings,
    TwilioProviderSettings,
)

log = logging.getLogger(__name__)


def _all_topics(settings: Settings) -> list[str]:
    return settings.all_topics


def _readiness(pool: asyncpg.Pool, producer: AIOKafkaProducer) -> dict[str, Callable[[], Awaitable[None]]]:
    """What /health/ready checks in both processes: the database answers and Kafka gives its metadata."""

    async def database() -> None:
        await pool.fetchval("SELECT 1")

    async def kafka() -> None:
        await producer.client.fetch_all_metadata()

    return {"database": database, "kafka": kafka}


def _backlog_refresher(pool: asyncpg.Pool) -> Callable[[], Awaitable[None]]:
    outbox = PgOutbox(pool)

    async def refresh() -> None:
        metrics.OUTBOX_BACKLOG.set(await outbox.backlog())

    return refresh


def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """``job`` at most once per ``seconds`` however often the result is called (housekeeping)."""
    last = -math.inf

    async def maybe() -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            last = time.monotonic()
            await job()

    return maybe


async def _background(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    stop.set()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


# How much a bucket holds, in seconds of its rate. A key may spend a second's worth at once: what its
# RateLimit-Limit header announces, and what the per-process bucket allows. A provider account gets a fifth
# of a second's: contracts are per second, and a burst is what gets an account throttled.
KEY_BURST_S = 1.0
PROVIDER_BURST_S = 0.2


def leased_tokens(settings: Settings, pool: asyncpg.Pool, *, burst_s: float) -> LeasedTokens:
    return LeasedTokens(PgTokenBuckets(pool), lease_s=settings.rate_limit_slice_s, burst_s=burst_s)


def key_limiter(settings: Settings, pool: asyncpg.Pool) -> KeyLimiter:
    """Per-key API limits: shared by every API replica, or (scope ``process``) per process."""
    if settings.rate_limit_scope == "process":
        return KeyRateLimiter(settings.api_key_rate_limit_per_s)
    return SharedKeyRateLimiter(
        leased_tokens(settings, pool, burst_s=KEY_BURST_S), settings.api_key_rate_limit_per_s
    )


def provider_limiter(settings: Settings, pool: asyncpg.Pool) -> RateLimiter:
    """Per-channel provider rates: shared by every worker, or (scope ``process``) per worker process."""
    if settings.rate_limit_scope == "process":
        return ChannelRateLimiter(settings.rate_limits(), burst_s=PROVIDER_BURST_S)
    tokens = leased_tokens(settings, pool, burst_s=PROVIDER_BURST_S)
    return ClusterRateLimiter(tokens, settings.rate_limits(), prefix="channel:")


def build_relay(
    settings: Settings,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer | Callable[[], AIOKafkaProducer],
    clock: Clock,
) -> OutboxRelay:
    return OutboxRelay(
        PgOutbox(pool),
        KafkaDispatchPublisher(
            producer, settings.topic_for_priority, settings.dead_letter_topic, settings.status_topic
        ),
        clock,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        retention=timedelta(seconds=settings.outbox_retention_s),
    )


def build_api_app(settings: Settings) -> web.Application:
    """The API needs PostgreSQL to start and to accept; Kafka is connected in the background (the outbox holds
    what is accepted meanwhile), so an API restarted during a Kafka outage starts, accepts and is ready."""

    async def resources(app: web.Application) -> AsyncIterator[None]:
        clock = SystemClock()
        pool = await create_pool(
            settings.database_url.get_secret_value(),
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )
        link = KafkaLink(
            lambda: make_producer(kafka_connection(settings), linger_ms=settings.kafka_linger_ms),
            lambda: ensure_topics(
                kafka_connection(settings),
                _all_topics(settings),
                partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication_factor,
            ),
        )
        relay = build_relay(settings, pool, lambda: link.producer, clock)
        wake_relay = relay.wake if settings.outbox_relay_enabled else None
        admission = Admission(PgOutbox(pool), max_backlog=settings.max_outbox_backlog)
        engine = IsolatedTemplateEngine(
            workers=settings.template_workers,
            time_limit_s=settings.template_render_timeout_s,
            memory_mib=settings.template_memory_mib,
        )
        await engine.start()
        templates = TemplateService(PgTemplateStore(pool), clock, engine)
        app[TEMPLATES] = templates
        stats = StatsService(PgDeliveryStats(pool), clock)
        app[STATS] = stats
        app[RECEIPTS] = ReceiptService(PgReceipts(pool))
        app[TENANT_PROVIDERS] = TenantProviders(tenant_provider_store(settings, pool), clock)
        retention = RetentionService(
            PgRetention(pool),
            clock,
            days=settings.retention_days,
            days_by_tenant=settings.retention_days_by_tenant,
        )
        app[RETENTION] = retention
        app[WEBHOOKS] = WebhookService(
            PgWebhookEndpoints(pool),
            clock,
            allow_private_urls=settings.webhook_allow_private_urls,
            rotation_overlap=timedelta(seconds=settings.webhook_secret_overlap_s),
        )
        app[ROUND_BUDGET_S] = settings.delivery_round_s()
        callback_http = aiohttp.ClientSession()  # SNS certificates and subscription confirmations
        app[CALLBACKS] = Callbacks(clock, twilio_callbacks(settings), ses_callbacks(settings, callback_http))
        service = NotificationService(
            PgNotifications(pool),
            clock,
            render=templates.render_for,
            max_retries=max_retries(settings),
            on_enqueued=wake_relay,
            traces=OtelTraceContexts(),
            admission=admission,
        )

        hub = LiveHub(capacity=settings.ws_client_buffer)
        status_reader = StatusTopicReader(
            lambda: make_status_consumer(
                kafka_connection(settings), fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms
            ),
            settings.status_topic,
            hub,
        )

        async def database() -> None:
            await pool.fetchval("SELECT 1")

        async def accepting() -> None:
            if not admission.open:
                raise Overloaded(f"{admission.backlog} records wait to be published")

        async def kafka() -> None:
            if not link.up.is_set():
                raise Unavailable("not connected")

        async def live_ready() -> None:
            # Until the reader sits at the end of the status topic, a WebSocket client would miss events.
            await status_reader.ready.wait()

        authenticator = Authenticator(PgApiKeyStore(pool), clock, cache_ttl_s=settings.api_key_cache_s)
        failed_auth = FailedAuthLimiter(
            rate_per_s=settings.api_failed_auth_per_s, burst=4 * settings.api_failed_auth_per_s
        )
        app[SERVICES] = ApiServices(
            service,
            Operations(PgOperatorActions(pool), clock, on_enqueued=wake_relay),
            authenticator,
            key_limiter(settings, pool),
            {"database": database, "accepting": accepting},
            # Reported by /health/ready without making the API unready: accepting needs neither.
            {"kafka": kafka, "status_topic": live_ready},
            failed_auth,
        )
        app[CONSOLE] = Console(
            SessionCookies(
                settings.console_secret.get_secret_value() if settings.console_secret else None,
                max_age_s=settings.console_session_hours * 3600,
            ),
            OverviewService(PgOverview(pool), clock, report_interval_s=settings.metrics_refresh_s),
            KeyService(PgApiKeyStore(pool), clock),
            clock,
            settings.jaeger_ui_url,
        )
        app[LIVE] = LiveEndpoint(
            hub,
            authenticator,
            heartbeat_s=settings.ws_heartbeat_s,
            max_per_key=settings.ws_max_connections_per_key,
            recheck_s=settings.api_key_cache_s,
            failed_auth=failed_auth,
            events=PgStatusEvents(pool),
        )
        stop = asyncio.Event()

        async def backlog() -> None:
            metrics.OUTBOX_BACKLOG.set(await admission.refresh())

        async def purge_history() -> None:
            older_than = clock.now() - timedelta(days=settings.status_history_days)
            await PgSweeps(pool).purge_status_history(older_than, limit=10_000)

        async def kafka_then_readers() -> None:
            await link.run(stop)
            if stop.is_set():
                return
            readers = [status_reader.run(stop)]
            if settings.outbox_relay_enabled:
                readers.append(relay.run(stop))
            await asyncio.gather(*readers)

        tasks = [
            asyncio.create_task(kafka_then_readers(), name="kafka"),
            asyncio.create_task(
                metrics.refresh_periodically(
                    stop,
                    settings.metrics_refresh_s,
                    backlog,
                    _every(600, stats.purge_expired),
                    _every(60, purge_history),
                    _every(60, retention.purge_expired),
                ),
                name="metrics-refresh",
            ),
        ]
        log.info("api ready", extra={"relay": settings.outbox_relay_enabled})
        try:
            yield
        finally:
            await _background(stop, *tasks)
            await link.close()
            await engine.close()
            await callback_http.close()
            await pool.close()

    app = create_app(settings.max_body_bytes, resources)
    app[UNAVAILABLE_ERRORS] = POSTGRES_UNAVAILABLE
    app[REQUEST_DEADLINE_S] = settings.api_request_timeout_s
    return app


def freeze_startup_heap() -> None:
    """Once started: what start-up built (modules, the app, the pools, clients, validation metadata) lives as
    long as the process. ``gc.freeze`` takes it out of the collector's generations, so a full collection no
    longer walks all of it while requests wait: measured under 50 connections, the API's p99 fell from
    ~130 ms to ~70 ms and its rate rose ~15% (docs/benchmarks.md). Start-up's own garbage is collected first,
    not frozen."""
    gc.collect()
    gc.freeze()


async def serve_api(settings: Settings, stop: asyncio.Event, *, reuse_port: bool = False) -> None:
    # Long enough for the longest URL the API accepts (a 4096-character recipient filter, percent-encoded).
    runner = web.AppRunner(
        build_api_app(settings),
        access_log=None,
        handle_signals=False,
        max_line_size=65536,
        max_field_size=8190,  # a header line; the request line (long URLs) has max_line_size
        max_headers=128,  # bounded: a client cannot make the server hold thousands of header lines
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port, reuse_port=reuse_port or None)
        await site.start()
        freeze_startup_heap()
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


def twilio_callbacks(settings: Settings) -> dict[str, TwilioCallback]:
    """The Twilio providers that take receipts (a status callback URL), by name."""
    return {
        p.name: TwilioCallback(p.auth_token.get_secret_value(), p.status_callback_url)
        for channel in Channel
        for p in settings.providers_for(channel.value)
        if isinstance(p, TwilioProviderSettings) and p.status_callback_url and p.auth_token
    }


def ses_callbacks(settings: Settings, http: aiohttp.ClientSession) -> dict[str, SesCallback]:
    """The SES providers whose events come back through SNS (a topic configured), by name."""
    return {
        p.name: SesCallback(p.sns_topic_arn, SnsVerifier(http, url_pattern=p.sns_url_pattern), http)
        for channel in Channel
        for p in settings.providers_for(channel.value)
        if isinstance(p, SesProviderSettings) and p.sns_topic_arn
    }


def build_provider(
    config: AnyProvider, http: aiohttp.ClientSession, resources: AsyncExitStack
) -> DeliveryProvider:
    """The adapter for one configured provider, by its type; what it opens is closed with ``resources``."""
    if isinstance(config, ApnsProviderSettings):
        apns = ApnsProvider(
            config.name,
            ApnsConfig(
                team_id=config.team_id,
                key_id=config.key_id,
                private_key=config.private_key.get_secret_value(),
                topic=config.topic,
                base_url=config.base_url or (APNS_SANDBOX if config.sandbox else APNS_PRODUCTION),
                ca_file=config.ca_file,
                timeout_s=config.timeout_s,
            ),
        )
        resources.push_async_callback(apns.aclose)
        return apns
    if isinstance(config, SesProviderSettings):
        token = config.session_token
        return SesProvider(
            config.name,
            SesConfig(
                region=config.region,
                access_key_id=config.access_key_id,
                secret_access_key=config.secret_access_key.get_secret_value(),
                sender=config.sender,
                session_token=token.get_secret_value() if token else None,
                configuration_set=config.configuration_set,
                endpoint_url=config.endpoint_url,
                timeout_s=config.timeout_s,
            ),
            http,
        )
    if isinstance(config, FcmProviderSettings):
        return FcmProvider(
            config.name,
            ServiceAccount.from_json(config.service_account.get_secret_value()),
            http,
            base_url=config.base_url,
            timeout_s=config.timeout_s,
        )
    if isinstance(config, TwilioProviderSettings):
        key_sid, key_secret = config.api_key_sid, config.api_key_secret
        secret = key_secret if key_secret is not None else config.auth_token
        assert secret is not None  # the settings require one of them
        return TwilioProvider(
            config.name,
            TwilioConfig(
                account_sid=config.account_sid,
                username=key_sid or config.account_sid,
                password=secret.get_secret_value(),
                from_number=config.from_number,
                messaging_service_sid=config.messaging_service_sid,
                status_callback_url=config.status_callback_url,
                base_url=config.base_url,
                timeout_s=config.timeout_s,
            ),
            http,
        )
    if isinstance(config, SmtpProviderSettings):
        return SmtpProvider(
            config.name,
            SmtpConfig(
                host=config.host,
                port=config.port,
                sender=config.sender,
                tls=config.tls,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                timeout_s=config.timeout_s,
                ca_file=config.ca_file,
                message_id_domain=config.message_id_domain,
            ),
        )
    return HttpProvider(
        config.name,
        config.url,
        http,
        timeout_s=config.timeout_s,
        hmac_secret=config.hmac_secret.get_secret_value() if config.hmac_secret else None,
    )


def build_route(
    settings: Settings,
    breaker_name: str,
    config: AnyProvider,
    http: aiohttp.ClientSession,
    resources: AsyncExitStack,
) -> Route:
    """One provider behind its own breaker."""
    return Route(
        build_provider(config, http, resources),
        AioCircuitBreaker(
            breaker_name,
            fail_max=settings.breaker_fail_max,
            reset_timeout_s=settings.breaker_reset_s,
            half_open_max_calls=settings.breaker_half_open_calls,
        ),
    )


def build_routes(
    settings: Settings, http: aiohttp.ClientSession, resources: AsyncExitStack
) -> dict[Channel, list[Route]]:
    """Each channel's providers in failover order, each behind its own breaker (per channel and provider)."""
    return {
        channel: [
            build_route(settings, f"{channel.value}:{p.name}", p, http, resources)
            for p in settings.providers_for(channel.value)
        ]
        for channel in Channel
    }


_PROVIDER_LIST = TypeAdapter(list[AnyProviderSettings])


def build_tenant_routes(
    settings: Settings,
    pool: asyncpg.Pool,
    clock: Clock,
    http: aiohttp.ClientSession,
    resources: AsyncExitStack,
) -> TenantRoutes | None:
    """Tenants' own providers (None when the server keeps no tenant credentials): each behind a breaker of its
    own, per channel, tenant and provider."""
    store = tenant_provider_store(settings, pool)
    if store is None:
        return None

    def build(tenant_id: str, channel: Channel, providers: str) -> list[Route]:
        return [
            build_route(settings, f"{channel.value}:{tenant_id}:{p.name}", p, http, resources)
            for p in _PROVIDER_LIST.validate_json(providers)
        ]

    return TenantRoutes(store, build, clock, settings.tenant_providers_refresh_s)


def tenant_provider_store(settings: Settings, pool: asyncpg.Pool) -> PgTenantProviders | None:
    key = settings.provider_credentials_key
    return None if key is None else PgTenantProviders(pool, Fernet(key.get_secret_value()))


def _worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


async def _serve_worker_http(
    settings: Settings, readiness: dict[str, Callable[[], Awaitable[None]]]
) -> web.AppRunner:
    runner = web.AppRunner(create_worker_app(readiness), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.worker_http_host, settings.worker_http_port).start()
    log.info(
        "worker http listening",
        extra={"url": f"http://{settings.worker_http_host}:{settings.worker_http_port}"},
    )
    return runner


async def _consumer_lag(consumer: AIOKafkaConsumer) -> dict[str, int]:
    """Per topic: records at the partition ends not yet committed by this worker (its partitions only)."""
    lag: dict[str, int] = {}
    for tp in consumer.assignment():
        try:
            end = consumer.highwater(tp)
            if end is None:  # nothing fetched from it yet
                continue
            committed = await consumer.committed(tp)
        except (AssertionError, KafkaError):  # revoked by a rebalance meanwhile ("Partition is not assigned")
            continue
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - (committed or 0))
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic).set(value)
    return lag


async def build_worker(settings: Settings, resources: AsyncExitStack) -> Worker:
    """Build everything the worker runs on and the ``Worker`` itself; every resource opened here is closed by
    ``resources`` (in reverse order) however the run ends. Nothing is started but connections: the consumer
    starts in the work source's run, the background jobs when the worker is entered."""
    clock = SystemClock()
    worker_id = _worker_id(settings)
    pool = await create_pool(
        settings.database_url.get_secret_value(),
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
    resources.push_async_callback(pool.close)
    # One provider connection per delivery in flight (aiohttp's default pool of 100 would queue the rest).
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.worker_concurrency))
    resources.push_async_callback(http.close)
    producer = make_producer(kafka_connection(settings), linger_ms=settings.kafka_linger_ms)
    resources.push_async_callback(producer.stop)
    await ensure_topics(
        kafka_connection(settings),
        _all_topics(settings),
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
    )
    await producer.start()
    http_runner = await _serve_worker_http(settings, _readiness(pool, producer))
    resources.push_async_callback(http_runner.cleanup)

    # The worker relays too: what its recovery sweep re-enqueues is published at once, status events of its
    # deliveries go out without waiting for a poll, and delivery keeps flowing with no API running.
    relay = build_relay(settings, pool, producer, clock)
    probe = make_probe(kafka_connection(settings), settings.kafka_consumer_group)
    resources.push_async_callback(probe.stop)
    await probe.start()
    recovery = Recovery(
        PgSweeps(pool),
        clock,
        stale_pending=timedelta(seconds=settings.stale_pending_s),
        interval_s=settings.recovery_interval_s,
        on_enqueued=relay.wake,
        queue=KafkaDispatchQueue(probe, settings.topic_for_priority),
    )
    routes = build_routes(settings, http, resources)
    breakers = [r.breaker for rs in routes.values() for r in rs]
    resources.callback(metrics.register_breakers(breakers))
    deliverer = Deliverer(
        PgDeliveryLedger(pool),
        routes,
        clock,
        worker_id=worker_id,
        lease=timedelta(seconds=settings.worker_lease_s),
        round_budget=timedelta(seconds=settings.delivery_round_s()),
        policy=RetryPolicy(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            max_retries=max_retries(settings),
            max_retry_after_s=settings.retry_after_max_s,
        ),
        limiter=provider_limiter(settings, pool),
        pauses=PauseCache(PgOperatorActions(pool).pauses, clock, settings.pause_refresh_s),
        observer=metrics.PrometheusDeliveryObserver(),
        tenant_routes=build_tenant_routes(settings, pool, clock, http, resources),
    )
    consumer = make_group_consumer(settings)
    resources.push_async_callback(consumer.stop)

    def source(dispatcher: PriorityDispatcher) -> PriorityConsumerLoop:
        return PriorityConsumerLoop(
            consumer,
            dispatcher,
            {settings.topic_for_priority(p.value): p for p in Priority},  # not the DLQ
            commit_interval_s=settings.worker_commit_interval_s,
            shutdown_grace_s=settings.worker_shutdown_grace_s,
        )

    reports = PgWorkerReports(pool)

    async def refresh_lag_and_report() -> None:
        # What the console shows of this worker (the API runs no consumer group and no breakers).
        lag = await _consumer_lag(consumer)
        await reports.report(
            WorkerReport(
                worker_id,
                clock.now(),
                lag,
                {b.name: b.state for b in breakers},
                {c: r for c, r in settings.rate_limits().items()},
            )
        )

    async def refresh_metrics(stop: asyncio.Event) -> None:
        await metrics.refresh_periodically(
            stop, settings.metrics_refresh_s, _backlog_refresher(pool), refresh_lag_and_report
        )

    background: list[tuple[str, BackgroundJob]] = [
        ("recovery", recovery.run),
        ("metrics-refresh", refresh_metrics),
        ("webhooks", build_webhook_dispatcher(settings, pool, http, clock, worker_id).run),
    ]
    if settings.outbox_relay_enabled:
        background.insert(0, ("outbox-relay", relay.run))
    return Worker(
        deliverer,
        source,
        WorkerLimits(
            concurrency=settings.worker_concurrency,
            per_channel=settings.worker_concurrency_per_channel,
            buffer_per_priority=settings.worker_buffer_per_priority,
        ),
        worker_id=worker_id,
        hooks=delivery_hooks(),
        background=background,
        on_round_done=relay.wake,  # publish the round's status events now
    )


def webhook_policy(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(
        max_attempts=settings.webhook_max_attempts,
        retry_base_s=settings.webhook_retry_base_s,
        retry_cap_s=settings.webhook_retry_cap_s,
        disable_after_s=settings.webhook_disable_after_s,
        lease_s=settings.webhook_lease_s,
        poll_interval_s=settings.webhook_poll_interval_s,
    )


def build_webhook_dispatcher(
    settings: Settings, pool: asyncpg.Pool, http: aiohttp.ClientSession, clock: SystemClock, worker_id: str
) -> WebhookDispatcher:
    """Status webhooks go out from every worker: one breaker per endpoint (per worker process)."""
    breakers: dict[UUID, AioCircuitBreaker] = {}

    def breaker_for(endpoint_id: UUID) -> AioCircuitBreaker:
        if endpoint_id not in breakers:
            breakers[endpoint_id] = AioCircuitBreaker(
                f"webhook:{endpoint_id}",
                fail_max=settings.breaker_fail_max,
                reset_timeout_s=settings.breaker_reset_s,
            )
        return breakers[endpoint_id]

    return WebhookDispatcher(
        PgWebhookQueue(pool),
        HttpWebhookSender(http, clock, timeout_s=settings.webhook_timeout_s),
        clock,
        breaker_for,
        owner=worker_id,
        policy=webhook_policy(settings),
    )


def kafka_connection(settings: Settings) -> KafkaConnection:
    password = settings.kafka_sasl_password
    return KafkaConnection(
        settings.kafka_bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=password.get_secret_value() if password is not None else None,
        ssl_cafile=settings.kafka_ssl_cafile,
        ssl_certfile=settings.kafka_ssl_certfile,
        ssl_keyfile=settings.kafka_ssl_keyfile,
    )


def make_group_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_connection(settings).options(),
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


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Consume and deliver until ``stop`` is set; then drain (bounded), commit and close everything."""
    async with AsyncExitStack() as resources:
        worker = await build_worker(settings, resources)
        async with worker:
            freeze_startup_heap()
            await worker.run(stop)
