"""Prometheus metrics of both processes (``GET /metrics``), on the default registry (API processes sharing a
port keep them in shared files instead: ``_registry``).

Counters and histograms are updated where things happen; gauges that need a query (outbox backlog, consumer
lag) are refreshed by a background task every ``NOTIFY_METRICS_REFRESH_S``; breaker states are read when
scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from notify.domain.delivery import DeliveryResult
from notify.domain.model import Notification, Status
from notify.ports.resilience import CircuitBreaker

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

# --- API ----------------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("notify_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "notify_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ACCEPTED = Counter(
    "notify_notifications_accepted_total", "Notifications accepted (stored)", ["channel", "priority"]
)
WS_CLIENTS = Gauge(
    "notify_ws_clients", "WebSocket clients connected to this process", multiprocess_mode="livesum"
)
WS_EVENTS = Counter("notify_ws_events_sent_total", "Status events queued to WebSocket clients")
WS_DROPPED = Counter("notify_ws_clients_dropped_total", "WebSocket clients closed for falling behind")
# Group commit (adapters/postgres/grouping.py): items per statement is how much concurrent work was shared.
GROUP_STATEMENTS = Counter("notify_group_statements_total", "Statements run for grouped writes", ["group"])
GROUP_ITEMS = Counter("notify_group_items_total", "Items written by grouped statements", ["group"])
GROUP_ISOLATED = Counter(
    "notify_group_isolated_total", "Groups that failed for one item and were written item by item", ["group"]
)
TEMPLATE_WORKERS_KILLED = Counter(
    "notify_template_workers_killed_total", "Template workers killed: a render ran out of time or memory"
)
PUSH_TOKENS_UNREGISTERED = Counter(
    "notify_push_tokens_unregistered_total",
    "Push tokens a provider said are no longer registered (drop them)",
    ["provider"],
)
RECEIPTS_REPORTED = Counter(
    "notify_receipts_total",
    "Receipts providers reported (handset or mailbox outcomes)",
    ["provider", "status"],
)
STATUS_EVENTS = Counter("notify_status_events_received_total", "Status events read from the status topic")

# --- both ---------------------------------------------------------------------------------------------------
OUTBOX_BACKLOG = Gauge(
    "notify_outbox_backlog", "Outbox records not yet published to Kafka", multiprocess_mode="livemostrecent"
)
UNAVAILABLE_ANSWERS = Counter(
    "notify_http_unavailable_total",
    "Requests answered 503: the database unreachable or slow (unavailable, timeout), load shed (overloaded)",
    ["reason"],
)
OUTBOX_PUBLISHED = Counter("notify_outbox_published_total", "Outbox records published by this process")

# --- worker -------------------------------------------------------------------------------------------------
PROVIDER_CALLS = Counter(
    "notify_deliveries_total",
    "Provider calls by outcome (delivered, transient, permanent)",
    ["channel", "provider", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "notify_provider_call_duration_seconds",
    "Duration of one provider call",
    ["channel", "provider"],
    buckets=_LATENCY_BUCKETS,
)
ROUNDS = Counter(
    "notify_delivery_rounds_total",
    "Deliveries taken from Kafka by how they ended (delivered, retrying, failed, expired, paused, skipped, "
    "claim_lost)",
    ["channel", "outcome"],
)
ATTEMPTS = Counter("notify_delivery_attempts_total", "Delivery attempts that called a provider", ["channel"])
RETRIES = Counter("notify_delivery_retries_total", "Attempts that ended in a scheduled retry", ["channel"])
DELIVERY_LATENCY = Histogram(
    "notify_delivery_latency_seconds",
    "From accepted (or due, when scheduled) to delivered",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
LIMITER_WAIT = Histogram(
    "notify_rate_limiter_wait_seconds",
    "Time a delivery waited for its channel's token bucket",
    ["channel"],
    buckets=(0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
)
IN_FLIGHT = Gauge("notify_deliveries_in_flight", "Deliveries running in this worker")
CONSUMER_LAG = Gauge(
    "notify_consumer_lag", "Records on the topic not yet committed by this worker's partitions", ["topic"]
)

_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class BreakerCollector(Collector):
    """``notify_breaker_state{breaker}``: 0 closed, 1 half-open, 2 open, read from the breakers on scrape."""

    def __init__(self, breakers: Sequence[CircuitBreaker]) -> None:
        self._breakers = list(breakers)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "notify_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", labels=["breaker"]
        )
        for breaker in self._breakers:
            family.add_metric([breaker.name], _BREAKER_STATES.get(breaker.state, 2))
        yield family


def register_breakers(breakers: Iterable[CircuitBreaker]) -> Callable[[], None]:
    collector = BreakerCollector(list(breakers))
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


class PrometheusDeliveryObserver:
    """The ``DeliveryObserver`` port on the metrics above."""

    def limiter_waited(self, channel: str, seconds: float) -> None:
        LIMITER_WAIT.labels(channel).observe(seconds)

    def round_finished(self, notification: Notification, result: DeliveryResult, stored_at: datetime) -> None:
        channel = notification.channel.value
        for call in result.calls:
            PROVIDER_CALLS.labels(channel, call.provider, call.outcome.value).inc()
            PROVIDER_LATENCY.labels(channel, call.provider).observe(call.latency_ms / 1000)
        if result.counts_as_attempt:
            ATTEMPTS.labels(channel).inc()
        if result.status is Status.RETRYING:
            RETRIES.labels(channel).inc()
        elif result.status is Status.DELIVERED:
            due = max(notification.created_at, notification.scheduled_at or notification.created_at)
            DELIVERY_LATENCY.labels(channel).observe(max(0.0, (stored_at - due).total_seconds()))


def count_accepted(notifications: Iterable[Notification]) -> None:
    for n in notifications:
        ACCEPTED.labels(n.channel.value, n.priority.value).inc()


def route_of(request: web.Request) -> str:
    """The route template (``/api/v1/notifications/{id}``), never the raw path: label values stay few."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = route_of(request)
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(_registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})


# prometheus_client's multiprocess mode: set (before the library is imported) for processes sharing a port.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _registry() -> CollectorRegistry:
    """This process's metrics; or, for processes sharing a port (``notify api --processes``, which sets
    ``MULTIPROCESS_DIR_VARIABLE`` for them), every process's, summed from their files."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


async def refresh_periodically(
    stop: asyncio.Event, interval_s: float, *refreshers: Callable[[], Awaitable[None]]
) -> None:
    """Run each refresher every ``interval_s`` until ``stop``; a failing one is logged and tried again."""
    while not stop.is_set():
        for refresh in refreshers:
            try:
                await refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("metrics refresh failed", extra={"error": repr(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
