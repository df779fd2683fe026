"""What the worker does around every delivery (``notify.app.worker.DeliveryHook``): the logging context, the
delivery's span in the notification's trace, and its metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import SpanKind

from notify.adapters.telemetry import metrics
from notify.adapters.telemetry.tracing import span_in
from notify.app.worker import DeliveryHook, DeliveryRound
from notify.logs import correlation_id_var, notification_id_var


class LogContext:
    """Every log line of a delivery carries its notification id and the accepting request's correlation id."""

    @contextmanager
    def around(self, round: DeliveryRound) -> Iterator[None]:
        work = round.work
        correlation = correlation_id_var.set(work.correlation_id)
        notification = notification_id_var.set(str(work.notification_id))
        try:
            yield
        finally:
            correlation_id_var.reset(correlation)
            notification_id_var.reset(notification)


class DeliverySpan:
    """A CONSUMER span continuing the producer span whose context travelled in the record's headers."""

    @contextmanager
    def around(self, round: DeliveryRound) -> Iterator[None]:
        work = round.work
        with span_in(
            f"{work.partition.topic} deliver",
            work.trace_context,
            SpanKind.CONSUMER,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": work.partition.topic,
                "messaging.operation.type": "process",
                "messaging.kafka.offset": work.offset,
                "notification.id": str(work.notification_id),
            },
        ) as span:
            yield
            if round.outcome is not None:
                span.set_attribute("notify.outcome", round.outcome.value)


class DeliveryMetrics:
    """Deliveries in flight, and rounds by channel and outcome."""

    @contextmanager
    def around(self, round: DeliveryRound) -> Iterator[None]:
        metrics.IN_FLIGHT.inc()
        try:
            yield
        finally:
            metrics.IN_FLIGHT.dec()
        if round.outcome is not None:
            metrics.ROUNDS.labels(round.work.channel or "unknown", round.outcome.value).inc()


def delivery_hooks() -> list[DeliveryHook]:
    """The worker's hooks, outermost first: the log context covers the span's and the metrics' own logs."""
    return [LogContext(), DeliveryMetrics(), DeliverySpan()]
