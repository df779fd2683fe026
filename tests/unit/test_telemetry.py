"""Logs, traces and metrics: the JSON log formatter, the tracing adapter, and the two telemetry ports as the
use cases call them (DeliveryObserver in the Deliverer, TraceContexts in the NotificationService).

No test here installs the global OpenTelemetry tracer provider (it can be set once per process and other tests
rely on it being unset): spans come from a local ``TracerProvider``, and the one test that needs the global
provider runs in a subprocess.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from prometheus_client import REGISTRY

from notify.adapters.telemetry.metrics import (
    BreakerCollector,
    PrometheusDeliveryObserver,
    register_breakers,
)
from notify.adapters.telemetry.tracing import (
    OtelTraceContexts,
    current_traceparent,
    span_in,
    trace_id_of,
)
from notify.app.delivery import Deliverer, DeliveryOutcome, Route
from notify.app.notifications import NewNotification, NotificationService
from notify.domain.delivery import AttemptOutcome, AttemptRecord, DeliveryResult
from notify.domain.errors import TransientProviderError, ValidationFailed
from notify.domain.model import Channel, Notification, Priority, Status
from notify.logs import JsonFormatter, correlation_id_var, notification_id_var
from tests.fakes import (
    BreakerInState,
    FakeBreaker,
    FakeClock,
    FakeProvider,
    FakeStore,
    FakeTraceContexts,
    RecordingObserver,
    WaitingLimiter,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
SMS = NewNotification(channel=Channel.SMS, recipient="+14155550123", content="hello")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_tracer() -> Iterator[trace.Tracer]:
    provider = TracerProvider()  # local: never installed as the global provider
    yield provider.get_tracer("t")
    provider.shutdown()


def no_global_provider() -> bool:
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


# --- logs ---------------------------------------------------------------------------------------------------


def log_line(message: str = "hello %s", *args: object, **extra: object) -> dict[str, object]:
    args = args or (("world",) if "%s" in message else ())
    record = logging.getLogger("notify.test").makeRecord(
        "notify.test", logging.INFO, __file__, 1, message, args, None, extra=extra or None
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


class TestJsonFormatter:
    def test_a_line_is_json_with_timestamp_level_logger_and_message(self) -> None:
        entry = log_line()
        assert entry["level"] == "INFO" and entry["logger"] == "notify.test"
        assert entry["message"] == "hello world"
        timestamp = str(entry["timestamp"])
        assert timestamp.endswith("Z")
        assert datetime.fromisoformat(timestamp.replace("Z", "+00:00")).utcoffset() == timedelta(0)

    def test_inside_a_span_the_line_carries_its_trace_and_span_ids(self, local_tracer: trace.Tracer) -> None:
        with local_tracer.start_as_current_span("work") as span:
            context = span.get_span_context()
            assert context.is_valid
            entry = log_line()
        assert HEX32.match(str(entry["trace_id"])) and HEX16.match(str(entry["span_id"]))
        assert entry["trace_id"] == format(context.trace_id, "032x")
        assert entry["span_id"] == format(context.span_id, "016x")

    def test_ids_keep_their_leading_zeros(self) -> None:
        class SmallIds(IdGenerator):
            def generate_trace_id(self) -> int:
                return 0xABC

            def generate_span_id(self) -> int:
                return 0x12

        provider = TracerProvider(id_generator=SmallIds())
        with provider.get_tracer("t").start_as_current_span("work"):
            entry = log_line()
        provider.shutdown()
        assert entry["trace_id"] == "00000000000000000000000000000abc"
        assert entry["span_id"] == "0000000000000012"

    def test_a_nested_span_gives_its_own_span_id_and_the_same_trace(self, local_tracer: trace.Tracer) -> None:
        with (
            local_tracer.start_as_current_span("outer") as outer,
            local_tracer.start_as_current_span("inner") as inner,
        ):
            entry = log_line()
        assert entry["trace_id"] == format(outer.get_span_context().trace_id, "032x")
        assert entry["span_id"] == format(inner.get_span_context().span_id, "016x")
        assert entry["span_id"] != format(outer.get_span_context().span_id, "016x")

    def test_outside_a_span_there_are_no_trace_ids(self) -> None:
        entry = log_line()
        assert "trace_id" not in entry and "span_id" not in entry

    def test_correlation_and_notification_ids_come_from_the_context(self) -> None:
        assert "correlation_id" not in log_line() and "notification_id" not in log_line()
        tokens = (correlation_id_var.set("corr-1"), notification_id_var.set("n-42"))
        try:
            entry = log_line()
        finally:
            notification_id_var.reset(tokens[1])
            correlation_id_var.reset(tokens[0])
        assert entry["correlation_id"] == "corr-1" and entry["notification_id"] == "n-42"
        assert "correlation_id" not in log_line()

    def test_extra_fields_appear_and_odd_values_are_still_valid_json(self) -> None:
        nid = uuid4()
        entry = log_line("done", status="retrying", attempt=3, id=nid, at=datetime(2026, 1, 1))
        assert entry["message"] == "done"
        assert (entry["status"], entry["attempt"], entry["id"]) == ("retrying", 3, str(nid))
        assert entry["at"] == "2026-01-01 00:00:00"
        for standard in ("args", "msg", "levelno", "pathname", "exc_info", "taskName"):
            assert standard not in entry

    def test_an_exception_is_one_field(self) -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            record = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
            )
        entry = json.loads(JsonFormatter().format(record))
        assert entry["level"] == "ERROR" and "RuntimeError: boom" in entry["exception"]


# --- tracing ------------------------------------------------------------------------------------------------


def traceparent_of(span: trace.Span) -> str:
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


class TestTracing:
    def test_trace_id_of_a_traceparent(self) -> None:
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        assert trace_id_of(tp) == "4bf92f3577b34da6a3ce929d0e0e4736"
        for garbage in (None, "", "garbage", tp[:-1], tp + "-x", "00-xyz-00f067aa0ba902b7-01", tp.upper()):
            assert trace_id_of(garbage) is None, garbage

    def test_no_current_span_no_traceparent(self) -> None:
        assert no_global_provider()
        assert current_traceparent() is None
        assert OtelTraceContexts().for_notification(uuid4(), None) is None

    def test_current_traceparent_is_the_current_span(self, local_tracer: trace.Tracer) -> None:
        with local_tracer.start_as_current_span("request") as span:
            assert current_traceparent() == traceparent_of(span)
            assert TRACEPARENT.match(traceparent_of(span))

    def test_a_single_notification_keeps_the_request_span_and_names_it(
        self, local_tracer: trace.Tracer
    ) -> None:
        nid = uuid4()
        span = local_tracer.start_span("POST /api/v1/notifications")
        with trace.use_span(span, end_on_exit=True):
            stored = OtelTraceContexts().for_notification(nid, None)
        assert stored == traceparent_of(span)
        assert span.attributes is not None and span.attributes["notification.id"] == str(nid)  # type: ignore[attr-defined]

    def test_a_batch_notification_without_a_provider_is_untraced(self, local_tracer: trace.Tracer) -> None:
        # Its span comes from the global tracer: with none installed it is a no-op, so nothing to store.
        assert no_global_provider()
        with local_tracer.start_as_current_span("POST /api/v1/notifications/batch"):
            assert OtelTraceContexts().for_notification(uuid4(), uuid4()) is None

    def test_span_in_continues_a_stored_traceparent_even_without_a_provider(self) -> None:
        assert no_global_provider()
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with span_in("deliver", tp):
            assert current_traceparent() == tp
        with span_in("deliver", None):
            assert current_traceparent() is None

    @pytest.mark.e2e  # a Python subprocess: the global tracer provider can be installed once per process
    def test_with_a_provider_installed_batch_items_get_linked_root_traces(self) -> None:
        """Runs in a subprocess: the global tracer provider can be installed once per process."""
        script = textwrap.dedent(
            """
            import json, uuid
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            from notify.adapters.telemetry.tracing import OtelTraceContexts, current_traceparent, span_in

            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            contexts = OtelTraceContexts()
            batch, ids = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
            with trace.get_tracer("http").start_as_current_span("POST batch"):
                request = current_traceparent()
                items = [contexts.for_notification(i, batch) for i in ids]
                single = contexts.for_notification(ids[0], None)
            with span_in("deliver", items[0]):
                child = current_traceparent()
            spans = [
                {
                    "name": s.name,
                    "trace_id": format(s.context.trace_id, "032x"),
                    "span_id": format(s.context.span_id, "016x"),
                    "parent": format(s.parent.span_id, "016x") if s.parent else None,
                    "links": [format(l.context.span_id, "016x") for l in s.links],
                    "attributes": dict(s.attributes or {}),
                }
                for s in exporter.get_finished_spans()
            ]
            print(json.dumps({"batch": str(batch), "ids": [str(i) for i in ids], "request": request,
                              "items": items, "single": single, "child": child, "spans": spans}))
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        request = TRACEPARENT.match(out["request"])
        assert request is not None
        request_trace, request_span = request.groups()
        assert out["single"] == out["request"]  # a single POST: the request's own span

        items = [TRACEPARENT.match(tp) for tp in out["items"]]
        assert all(items)
        item_traces = [m.group(1) for m in items if m]
        assert len({*item_traces, request_trace}) == 3  # each item its own trace, not the request's

        accepted = [s for s in out["spans"] if s["name"] == "notification accepted"]
        assert [(s["trace_id"], s["span_id"]) for s in accepted] == [m.groups() for m in items if m]
        for span, nid in zip(accepted, out["ids"], strict=True):
            assert span["parent"] is None  # a root
            assert span["links"] == [request_span]  # linked to the batch request
            assert span["attributes"] == {"notification.id": nid, "batch.id": out["batch"]}

        child = TRACEPARENT.match(out["child"])
        assert child is not None and child.group(1) == item_traces[0]  # delivery continues the item's trace
        deliver = next(s for s in out["spans"] if s["name"] == "deliver")
        assert deliver["parent"] == out["items"][0].split("-")[2]


# --- DeliveryObserver in the Deliverer ----------------------------------------------------------------------


def observed_deliverer(
    store: FakeStore,
    provider: FakeProvider,
    clock: FakeClock,
    observer: RecordingObserver,
    limiter: WaitingLimiter | None = None,
) -> Deliverer:
    routes = {c: [Route(provider, FakeBreaker(provider.name))] for c in Channel}
    return Deliverer(
        store,
        routes,
        clock,
        worker_id="w1",
        lease=timedelta(seconds=30),
        limiter=limiter,
        observer=observer,
    )


class TestDeliveryObserver:
    async def test_limiter_wait_is_reported_with_the_channel(self) -> None:
        store, clock, observer, limiter = FakeStore(), FakeClock(), RecordingObserver(), WaitingLimiter(0.25)
        n = await NotificationService(store, clock).create("t", SMS)
        d = observed_deliverer(store, FakeProvider("gw"), clock, observer, limiter)
        assert await d.deliver(n.id, "sms") is DeliveryOutcome.DELIVERED
        assert limiter.acquired == ["sms"]
        assert observer.waits == [("sms", 0.25)]

    async def test_a_delivered_round_is_reported_once_with_the_claimed_notification(self) -> None:
        store, clock, observer = FakeStore(), FakeClock(), RecordingObserver()
        n = await NotificationService(store, clock).create("t", SMS)
        clock.advance(3)
        assert await observed_deliverer(store, FakeProvider("gw"), clock, observer).deliver(n.id) is (
            DeliveryOutcome.DELIVERED
        )
        assert len(observer.rounds) == 1
        claimed, result, stored_at = observer.rounds[0]
        assert claimed.id == n.id and claimed.status is Status.PROCESSING and claimed.attempts == 0
        assert claimed.created_at == n.created_at
        assert result.status is Status.DELIVERED and result.provider == "gw"
        assert [(c.provider, c.outcome) for c in result.calls] == [("gw", AttemptOutcome.DELIVERED)]
        assert stored_at == clock.now() == store.rows[n.id].updated_at
        assert observer.waits == [("sms", 0.0)]  # the token of its channel, taken after the claim

    async def test_a_transient_failure_is_reported_as_retrying(self) -> None:
        store, clock, observer = FakeStore(), FakeClock(), RecordingObserver()
        n = await NotificationService(store, clock).create("t", SMS)
        provider = FakeProvider("gw", [TransientProviderError("HTTP 503", status=503)])
        d = observed_deliverer(store, provider, clock, observer)
        assert await d.deliver(n.id) is DeliveryOutcome.RETRYING
        clock.current = store.rows[n.id].next_attempt_at or clock.current
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED
        assert [(r.status, [c.outcome for c in r.calls]) for _, r, _ in observer.rounds] == [
            (Status.RETRYING, [AttemptOutcome.TRANSIENT]),
            (Status.DELIVERED, [AttemptOutcome.DELIVERED]),
        ]
        assert [claimed.attempts for claimed, _, _ in observer.rounds] == [0, 1]

    async def test_skipped_and_expired_rounds_are_not_reported(self) -> None:
        store, clock, observer = FakeStore(), FakeClock(), RecordingObserver()
        svc = NotificationService(store, clock)
        limiter = WaitingLimiter(0.0)
        d = observed_deliverer(store, FakeProvider("gw"), clock, observer, limiter)
        cancelled = await svc.create("t", SMS)
        await svc.cancel("t", cancelled.id)
        assert await d.deliver(cancelled.id, "sms") is DeliveryOutcome.SKIPPED
        assert await d.deliver(uuid4(), "sms") is DeliveryOutcome.SKIPPED
        expiring = await svc.create(
            "t",
            NewNotification(Channel.SMS, "+14155550123", "x", expires_at=clock.now() + timedelta(seconds=1)),
        )
        clock.advance(5)
        assert await d.deliver(expiring.id, "sms") is DeliveryOutcome.EXPIRED
        assert observer.rounds == []
        assert observer.waits == []  # nothing claimed, no token taken: a dropped record costs no send

    async def test_a_lost_claim_is_not_reported(self) -> None:
        store, clock, observer = FakeStore(), FakeClock(), RecordingObserver()
        n = await NotificationService(store, clock).create("t", SMS)

        class SlowProvider(FakeProvider):
            async def send(self, message):  # type: ignore[no-untyped-def]
                clock.advance(60)  # the 30 s lease runs out and the notification is recovered meanwhile
                await store.recover_expired_leases(clock.now(), 10)
                return await super().send(message)

        assert await observed_deliverer(store, SlowProvider("gw"), clock, observer).deliver(n.id) is (
            DeliveryOutcome.CLAIM_LOST
        )
        assert observer.rounds == []


# --- TraceContexts in the NotificationService ---------------------------------------------------------------


class TestTraceContexts:
    async def test_accept_stores_the_notification_with_its_trace_context(self) -> None:
        store, traces = FakeStore(), FakeTraceContexts()
        svc = NotificationService(store, FakeClock(), traces=traces)
        accepted = await svc.accept("t", SMS)
        n = accepted.notification
        assert traces.calls == [(n.id, None)]
        assert store.rows[n.id].trace_context == traces.given[0] == "00-" + f"{1:032x}-{1:016x}-01"
        assert n.trace_context == traces.given[0]

    async def test_each_batch_item_gets_its_own_context_with_the_batch_id(self) -> None:
        store, traces = FakeStore(), FakeTraceContexts()
        svc = NotificationService(store, FakeClock(), traces=traces)
        accepted = await svc.accept_batch("t", [SMS] * 3)
        notifications = accepted.notifications
        assert traces.calls == [(n.id, accepted.batch.id) for n in notifications]
        assert [store.rows[n.id].trace_context for n in notifications] == traces.given
        assert len(set(traces.given)) == 3

    async def test_a_rejected_request_or_batch_asks_for_no_trace(self) -> None:
        store, traces = FakeStore(), FakeTraceContexts()
        svc = NotificationService(store, FakeClock(), traces=traces)
        with pytest.raises(ValidationFailed):
            await svc.accept("t", NewNotification(Channel.EMAIL, "not-an-address", "x"))
        with pytest.raises(ValidationFailed):
            await svc.accept_batch("t", [SMS, NewNotification(Channel.SMS, "nope", "x"), SMS])
        with pytest.raises(ValidationFailed):
            await svc.accept_batch("t", [])
        assert traces.calls == [] and store.rows == {}

    async def test_an_idempotent_replay_asks_for_no_new_trace(self) -> None:
        store, traces = FakeStore(), FakeTraceContexts()
        svc = NotificationService(store, FakeClock(), traces=traces)
        keyed = NewNotification(Channel.SMS, "+14155550123", "x", idempotency_key="k")
        first = await svc.accept("t", keyed)
        again = await svc.accept("t", keyed)
        assert again.replayed and again.notification.trace_context == first.notification.trace_context
        batch = await svc.accept_batch("t", [SMS, SMS], idempotency_key="b")
        assert (await svc.accept_batch("t", [SMS, SMS], idempotency_key="b")).replayed
        stored = [first.notification.id, *(n.id for n in batch.notifications)]
        assert [nid for nid, _ in traces.calls] == stored

    async def test_without_traces_nothing_is_stored(self) -> None:
        store = FakeStore()
        n = await NotificationService(store, FakeClock()).create("t", SMS)
        assert store.rows[n.id].trace_context is None


# --- Prometheus ---------------------------------------------------------------------------------------------


def sample(name: str, *, missing: float | None = None, **labels: str) -> float:
    """A sample's value. One that is not exported fails the test, unless ``missing`` says what its absence
    means here (a labelled child never touched yet); the metric family must exist either way."""
    family = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    assert any(m.name == family for m in REGISTRY.collect()), f"no metric {family}"
    value = REGISTRY.get_sample_value(name, labels)
    if value is None:
        assert missing is not None, f"{name}{labels} is not exported"
        return missing
    return value


def notification(clock: FakeClock, channel: Channel = Channel.SMS, **changes: object) -> Notification:
    now = clock.now()
    fields: dict[str, object] = {
        "id": uuid4(),
        "tenant_id": "t",
        "channel": channel,
        "recipient": "+14155550123",
        "content": "x",
        "priority": Priority.NORMAL,
        "status": Status.PROCESSING,
        "created_at": now,
        "updated_at": now,
    }
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


def call(provider: str, outcome: AttemptOutcome, at: datetime, ms: float = 40) -> AttemptRecord:
    return AttemptRecord(1, provider, at, at + timedelta(milliseconds=ms), outcome)


class TestPrometheusDeliveryObserver:
    def test_a_delivered_round_counts_each_call_and_observes_the_latency(self) -> None:
        clock = FakeClock()
        n = notification(clock)
        primary, secondary = f"p-{uuid4().hex[:8]}", f"s-{uuid4().hex[:8]}"
        result = DeliveryResult(
            Status.DELIVERED,
            [
                call(primary, AttemptOutcome.TRANSIENT, clock.now()),
                call(secondary, AttemptOutcome.DELIVERED, clock.now()),
            ],
            provider=secondary,
        )
        before = {
            "latency_count": sample("notify_delivery_latency_seconds_count", missing=0, channel="sms"),
            "latency_sum": sample("notify_delivery_latency_seconds_sum", missing=0, channel="sms"),
            "attempts": sample("notify_delivery_attempts_total", missing=0, channel="sms"),
            "retries": sample("notify_delivery_retries_total", missing=0, channel="sms"),
        }
        PrometheusDeliveryObserver().round_finished(n, result, clock.now() + timedelta(seconds=2.5))
        assert sample("notify_delivery_latency_seconds_count", channel="sms") == before["latency_count"] + 1
        assert sample("notify_delivery_latency_seconds_sum", channel="sms") == pytest.approx(
            before["latency_sum"] + 2.5
        )
        assert sample("notify_deliveries_total", channel="sms", provider=primary, outcome="transient") == 1
        assert sample("notify_deliveries_total", channel="sms", provider=secondary, outcome="delivered") == 1
        assert (
            sample("notify_deliveries_total", missing=0, channel="sms", provider=primary, outcome="delivered")
            == 0
        )
        assert sample("notify_provider_call_duration_seconds_count", channel="sms", provider=primary) == 1
        assert sample("notify_provider_call_duration_seconds_sum", channel="sms", provider=primary) == (
            pytest.approx(0.04)
        )
        assert sample("notify_delivery_attempts_total", channel="sms") == before["attempts"] + 1  # one round
        assert sample("notify_delivery_retries_total", missing=0, channel="sms") == before["retries"]

    def test_latency_of_a_scheduled_notification_counts_from_when_it_was_due(self) -> None:
        clock = FakeClock()
        n = notification(clock, Channel.PUSH, scheduled_at=clock.now() + timedelta(seconds=60))
        result = DeliveryResult(Status.DELIVERED, [call("gw", AttemptOutcome.DELIVERED, clock.now())])
        before = sample("notify_delivery_latency_seconds_sum", missing=0, channel="push")
        PrometheusDeliveryObserver().round_finished(n, result, clock.now() + timedelta(seconds=61))
        assert sample("notify_delivery_latency_seconds_sum", channel="push") == pytest.approx(before + 1)

    def test_a_retrying_round_counts_a_retry_and_no_latency(self) -> None:
        clock = FakeClock()
        n = notification(clock, Channel.EMAIL)
        provider = f"p-{uuid4().hex[:8]}"
        result = DeliveryResult(
            Status.RETRYING,
            [call(provider, AttemptOutcome.TRANSIENT, clock.now())],
            provider=provider,
            error="HTTP 503",
            next_attempt_at=clock.now() + timedelta(seconds=1),
        )
        retries = sample("notify_delivery_retries_total", missing=0, channel="email")
        latency = sample("notify_delivery_latency_seconds_count", missing=0, channel="email")
        PrometheusDeliveryObserver().round_finished(n, result, clock.now())
        assert sample("notify_delivery_retries_total", channel="email") == retries + 1
        assert sample("notify_delivery_latency_seconds_count", missing=0, channel="email") == latency
        assert sample("notify_deliveries_total", channel="email", provider=provider, outcome="transient") == 1

    def test_every_breaker_open_is_a_retry_but_not_an_attempt(self) -> None:
        clock = FakeClock()
        n = notification(clock, Channel.EMAIL)
        result = DeliveryResult(Status.RETRYING, [], error="every provider's circuit breaker is open")
        retries = sample("notify_delivery_retries_total", missing=0, channel="email")
        attempts = sample("notify_delivery_attempts_total", missing=0, channel="email")
        PrometheusDeliveryObserver().round_finished(n, result, clock.now())
        assert sample("notify_delivery_retries_total", channel="email") == retries + 1
        assert sample("notify_delivery_attempts_total", missing=0, channel="email") == attempts

    def test_limiter_wait_is_observed_per_channel(self) -> None:
        count = sample("notify_rate_limiter_wait_seconds_count", missing=0, channel="sms")
        total = sample("notify_rate_limiter_wait_seconds_sum", missing=0, channel="sms")
        PrometheusDeliveryObserver().limiter_waited("sms", 0.3)
        assert sample("notify_rate_limiter_wait_seconds_count", channel="sms") == count + 1
        assert sample("notify_rate_limiter_wait_seconds_sum", channel="sms") == pytest.approx(total + 0.3)


class TestBreakerCollector:
    def test_states_are_0_closed_1_half_open_2_open(self) -> None:
        breakers = [
            FakeBreaker("closed-one"),
            BreakerInState("half-one", "half_open"),
            FakeBreaker("open-one", open_for_s=5),
            BreakerInState("odd-one", "unknown"),
        ]
        [family] = list(BreakerCollector(breakers).collect())
        assert family.name == "notify_breaker_state"
        assert {s.labels["breaker"]: s.value for s in family.samples} == {
            "closed-one": 0,
            "half-one": 1,
            "open-one": 2,
            "odd-one": 2,  # an unknown state is reported as the worst
        }

    def test_states_are_read_on_each_scrape(self) -> None:
        breaker = FakeBreaker("gw")
        collector = BreakerCollector([breaker])
        assert [s.value for s in next(iter(collector.collect())).samples] == [0]
        breaker.open_for_s = 3
        assert [s.value for s in next(iter(collector.collect())).samples] == [2]

    def test_register_breakers_exposes_them_until_unregistered(self) -> None:
        name = f"b-{uuid4().hex[:8]}"
        unregister = register_breakers([BreakerInState(name, "half_open")])
        try:
            assert REGISTRY.get_sample_value("notify_breaker_state", {"breaker": name}) == 1
        finally:
            unregister()
        assert REGISTRY.get_sample_value("notify_breaker_state", {"breaker": name}) is None
