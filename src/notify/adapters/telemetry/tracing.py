"""OpenTelemetry tracing: one trace per notification.

The span that accepts a notification (the POST's server span, or for a batch a root span per notification
linked to the batch request) is stored with it as a W3C ``traceparent``. Every publish of the notification
(first, retry, replay, recovery) continues that trace: the relay's producer span is its child and travels in
the Kafka record headers; the worker's delivery span is the child of the producer span; the provider call
and the status update are children of the delivery span, and the provider receives ``traceparent``.

Only the entrypoints install a tracer provider (:func:`configure_tracing`); until then every span here is a
no-op, which is what in-process tests get.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "notify"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


@functools.cache
def tracer() -> trace.Tracer:
    # Made on first use, not at import, and then kept: get_tracer builds a new tracer (and resets warning
    # filters) on every call, which cost a worker 5% of its CPU. If this runs before the entrypoint installs
    # the provider, the global proxy tracer it returns forwards to that provider once installed.
    return trace.get_tracer(TRACER_NAME)


def configure_tracing(
    service_name: str, *, otlp_endpoint: str | None, sample_ratio: float, export_delay_ms: int = 2000
) -> TracerProvider:
    """Install the process's tracer provider. New traces are kept with ``sample_ratio``; a continued trace
    follows its parent's decision, so a notification's trace is recorded whole or not at all."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=export_delay_ms))
    trace.set_tracer_provider(provider)
    return provider


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return PROPAGATOR.extract({"traceparent": traceparent})


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex-digit trace id inside a traceparent (what Jaeger's /trace/<id> takes)."""
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


def inject_headers(headers: dict[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``) for the current span to outgoing HTTP headers."""
    PROPAGATOR.inject(headers)


def extract_context(headers: Mapping[str, str]) -> otel_context.Context:
    return PROPAGATOR.extract(dict(headers))


@contextmanager
def span_in(
    name: str,
    traceparent: str | None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A current span whose parent is ``traceparent`` (a stored or received context), else the current one."""
    with tracer().start_as_current_span(
        name, context=context_from(traceparent), kind=kind, attributes=attributes
    ) as span:
        yield span


class OtelTraceContexts:
    """The ``TraceContexts`` port: the trace a newly accepted notification will carry."""

    def for_notification(self, notification_id: UUID, batch_id: UUID | None) -> str | None:
        if batch_id is None:
            # A single POST: the request's server span is the notification's root.
            trace.get_current_span().set_attribute("notification.id", str(notification_id))
            return current_traceparent()
        # In a batch each notification gets its own trace, linked to the batch request's span; otherwise one
        # trace would hold a thousand deliveries.
        request = trace.get_current_span().get_span_context()
        span = tracer().start_span(
            "notification accepted",
            context=otel_context.Context(),  # a new root
            kind=SpanKind.INTERNAL,
            links=[Link(request)] if request.is_valid else None,
            attributes={"notification.id": str(notification_id), "batch.id": str(batch_id)},
        )
        span.end()
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier.get("traceparent")


# Requests not worth a trace: probes, scrapes, docs, and WebSocket sessions (a span would last hours).
_UNTRACED = ("/health", "/metrics", "/ws", "/docs", "/openapi.json")


@web.middleware
async def server_span_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The SERVER span of an API request, continuing the caller's trace when it sends ``traceparent``."""
    if request.path.startswith(_UNTRACED):
        response: web.StreamResponse = await handler(request)
        return response
    info = request.match_info
    route = info.route.resource.canonical if info.http_exception is None and info.route.resource else None
    with tracer().start_as_current_span(
        f"{request.method} {route or 'unmatched'}",
        context=extract_context(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": route or "",
            "url.path": request.path,
        },
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(StatusCode.ERROR)
        return response
