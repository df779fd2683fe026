"""Live status over WebSocket across processes, one trace per notification, JSON logs, Prometheus metrics.

Real processes (two APIs, a worker, the sandbox), real PostgreSQL, real Tansu; the OTLP collector is an HTTP
server inside the test that decodes the protobuf exports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb
from prometheus_client.parser import text_string_to_metric_families

from notify.devtools.devstack import create_api_key
from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.support import eventually

pytestmark = pytest.mark.timeout(180)


def now_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``eventually`` takes a coroutine function; these checks read local state."""

    async def run() -> bool:
        return check()

    return run


EVENT_FIELDS = {"notification_id", "batch_id", "channel", "status", "attempt", "error", "timestamp"}


# --- WebSocket ----------------------------------------------------------------------------------------------


@dataclass
class LiveClient:
    name: str
    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def start(self) -> LiveClient:
        async def read() -> None:
            async for message in self.ws:
                data = json.loads(message.data)
                (self.acks if "action" in data else self.events).append(data)

        self.reader = asyncio.create_task(read())
        return self

    def by_notification(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for e in self.events:
            out[e["notification_id"]].append(e["status"])
        return dict(out)


@contextlib.asynccontextmanager
async def live_client(
    http: aiohttp.ClientSession, api_url: str, key: str, name: str
) -> AsyncIterator[LiveClient]:
    ws = await http.ws_connect(
        f"{api_url.replace('http', 'ws', 1)}/ws", headers={"Authorization": f"Bearer {key}"}
    )
    client = LiveClient(name, ws).start()
    try:
        yield client
    finally:
        await ws.close()
        if client.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await client.reader


async def wait_status(stack: Stack, notification_id: str, status: str) -> None:
    async def reached() -> bool:
        return (await stack.get(notification_id))["status"] == status

    await eventually(reached, what=f"{notification_id} {status}", timeout_s=30)


async def test_websocket_clients_on_either_api_see_every_transition_of_their_tenant_only(
    stack: Stack,
) -> None:
    await stack.start_sandbox()
    await stack.start_api("api-a")
    await stack.start_api("api-b")
    await stack.start_worker(retry_base_s="0.2", retry_cap_s="0.5")
    key_b = await create_api_key(stack.database_url, name="other", tenant_id="tenant-b")
    api_a, api_b = stack.apis["api-a"], stack.apis["api-b"]

    async with aiohttp.ClientSession() as http:
        # No key, or a bad one: refused before the upgrade, in the documented error shape.
        async with http.get(f"{api_a}/ws") as r:
            assert r.status == 401 and (await r.json())["code"] == "unauthorized"
        async with http.get(f"{api_a}/ws", headers={"Authorization": "Bearer ntf_nope"}) as r:
            assert r.status == 401

        async with (
            live_client(http, api_a, stack.api_key, "a-on-api-a") as on_a,
            live_client(http, api_b, stack.api_key, "a-on-api-b") as on_b,
            live_client(http, api_b, key_b, "b-on-api-b") as tenant_b,
            live_client(http, api_a, stack.api_key, "a-email-only") as email_only,
        ):
            await email_only.ws.send_json({"action": "subscribe", "channels": ["email"]})
            await on_b.ws.send_json(
                {"action": "subscribe", "bogus": 1}
            )  # invalid: answered, filter unchanged
            await eventually(now_true(lambda: bool(email_only.acks and on_b.acks)), what="acknowledgements")
            assert email_only.acks[0] == {
                "action": "subscribed",
                "notification_ids": [],
                "batch_ids": [],
                "channels": ["email"],
            }
            assert on_b.acks[0]["action"] == "error" and on_b.acks[0]["code"] == "invalid_message"

            delivered = (await stack.send_sms("first"))["id"]
            await wait_status(stack, delivered, "delivered")
            await stack.set_sandbox(fail_next=1)
            retried = (await stack.send_sms("second"))["id"]
            await wait_status(stack, retried, "delivered")
            later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
            cancelled = (await stack.send_sms("third", scheduled_at=later))["id"]
            assert (await stack.cancel(cancelled))[0] == 200
            async with http.post(
                f"{api_b}/api/v1/notifications",
                json={"channel": "email", "recipient": "b@example.com", "content": "for b"},
                headers={"Authorization": f"Bearer {key_b}"},
            ) as r:
                assert r.status == 201
                other = (await r.json())["id"]
            await wait_status_as(http, api_b, key_b, other, "delivered")

            expected_a = {
                delivered: ["processing", "delivered"],
                retried: ["processing", "retrying", "processing", "delivered"],
                cancelled: ["cancelled"],
            }
            expected_b = {other: ["processing", "delivered"]}

            def complete() -> bool:
                return (
                    on_a.by_notification() == expected_a
                    and on_b.by_notification() == expected_a
                    and tenant_b.by_notification() == expected_b
                )

            await eventually(now_true(complete), what="every transition on every client", timeout_s=20)
            await asyncio.sleep(0.5)  # nothing more arrives (no duplicates, nothing of the other tenant)
            assert complete(), (on_a.events, on_b.events, tenant_b.events)
            assert email_only.events == []  # tenant-a sent no email

            for event in on_a.events + tenant_b.events:
                assert set(event) >= EVENT_FIELDS, event
                datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            retrying = next(e for e in on_a.events if e["status"] == "retrying")
            assert retrying["attempt"] == 1 and "HTTP 500" in retrying["error"]
            final = [e for e in on_a.events if e["notification_id"] == retried][-1]
            assert final["attempt"] == 2 and final["error"] is None and final["channel"] == "sms"

            # A filter by notification id: only that notification's events from now on.
            async with live_client(http, api_b, stack.api_key, "one-id") as one:
                await one.ws.send_json({"action": "subscribe", "notification_ids": [retried]})
                await eventually(now_true(lambda: bool(one.acks)), what="ack")
                async with stack.http.post(f"{api_a}/api/v1/notifications/{retried}/replay") as r:
                    assert r.status == 409  # delivered: not replayable, no event
                mine = (await stack.send_sms("not watched"))["id"]
                await wait_status(stack, mine, "delivered")
                await asyncio.sleep(0.5)
                assert one.events == []


async def processing_ids(stack: Stack) -> set[str]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch("SELECT id FROM notifications WHERE status = 'processing'")
    finally:
        await conn.close()
    return {str(r["id"]) for r in rows}


async def wait_status_as(http: aiohttp.ClientSession, api: str, key: str, nid: str, status: str) -> None:
    async def reached() -> bool:
        async with http.get(
            f"{api}/api/v1/notifications/{nid}", headers={"Authorization": f"Bearer {key}"}
        ) as r:
            return (await r.json())["status"] == status  # type: ignore[no-any-return]

    await eventually(reached, what=f"{nid} {status}", timeout_s=30)


# --- traces and logs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    error: bool


class OtlpReceiver:
    """An OTLP/HTTP trace collector: POST /v1/traces with an ExportTraceServiceRequest protobuf body."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _export(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes={
                                a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                                for a in s.attributes
                            },
                            error=s.status.code == 2,
                        )
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def __aenter__(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def test_one_trace_follows_a_notification_through_a_retry_and_logs_carry_its_ids(stack: Stack) -> None:
    async with OtlpReceiver() as otlp:
        await stack.start_sandbox()
        api = await stack.start_api(otlp_endpoint=otlp.url)
        worker = await stack.start_worker(otlp_endpoint=otlp.url, retry_base_s="0.2", retry_cap_s="0.5")
        await stack.set_sandbox(fail_next=1)
        status, body = await stack.post(
            {"channel": "sms", "recipient": "+14155550123", "content": "traced"},
            headers={"X-Correlation-ID": "corr-trace-1"},
        )
        assert status == 201
        nid, trace_id = body["id"], body["trace_id"]
        assert len(trace_id) == 32
        await wait_status(stack, nid, "delivered")
        # SIGTERM flushes the span processors (in a thread: the collector runs on this event loop).
        assert await asyncio.to_thread(worker.terminate) == 0
        assert await asyncio.to_thread(api.terminate) == 0

        spans = [s for s in otlp.spans if s.trace_id == trace_id]
        by_id = {s.span_id: s for s in spans}

        def children(parent: ReceivedSpan, kind: int | None = None) -> list[ReceivedSpan]:
            return [s for s in spans if s.parent_id == parent.span_id and (kind is None or s.kind == kind)]

        [server] = [s for s in spans if s.kind == SpanPb.SPAN_KIND_SERVER]
        assert (server.service, server.name, server.parent_id) == (
            "notify-api",
            "POST /api/v1/notifications",
            "",
        )
        assert server.attributes["notification.id"] == nid
        # The first publish and the retry's publish both continue the POST's trace.
        publishes = children(server, SpanPb.SPAN_KIND_PRODUCER)
        assert len(publishes) == 2, spans
        deliveries = [d for p in publishes for d in children(p, SpanPb.SPAN_KIND_CONSUMER)]
        assert len(deliveries) == 2 and {d.service for d in deliveries} == {"notify-worker"}
        outcomes = sorted(d.attributes["notify.outcome"] for d in deliveries)
        assert outcomes == ["delivered", "retrying"]
        provider_calls = []
        for delivery in deliveries:
            [call] = children(delivery, SpanPb.SPAN_KIND_CLIENT)
            assert call.name == "POST sandbox" and call.attributes["notification.id"] == nid
            assert call.error == (delivery.attributes["notify.outcome"] == "retrying")
            provider_calls.append(call)
            names = {c.name for c in children(delivery)}
            assert {"notification claim", "notification status update"} <= names
        # No orphans: every span but the POST's has its parent in this trace, and no span about this
        # notification went to another trace.
        assert [s for s in spans if s is not server and s.parent_id not in by_id] == []
        assert [
            s for s in otlp.spans if s.attributes.get("notification.id") == nid and s.trace_id != trace_id
        ] == []

        # The provider received the context of the client span that called it.
        received = (await stack.sandbox(f"/messages?idempotency_key={nid}"))["messages"]
        assert len(received) == 1, received
        _, got_trace, got_parent, _ = received[0]["traceparent"].split("-")
        assert got_trace == trace_id
        assert got_parent in {c.span_id for c in provider_calls}
        assert received[0]["correlation_id"] == "corr-trace-1"

        # Logs: every line is JSON; the worker's line about the retry carries the ids.
        for process in (api, worker):
            lines = [line for line in process.log_text().splitlines() if line.strip()]
            assert lines
            for line in lines:
                entry = json.loads(line)
                assert {"timestamp", "level", "logger", "message"} <= set(entry)
        retry_lines = [
            json.loads(line) for line in worker.log_text().splitlines() if '"delivery not done"' in line
        ]
        assert retry_lines, worker.log_text()[-2000:]
        line = retry_lines[0]
        assert line["notification_id"] == nid
        assert line["trace_id"] == trace_id
        assert len(line["span_id"]) == 16 and line["span_id"] in by_id
        assert line["correlation_id"] == "corr-trace-1"


async def test_batch_items_get_a_trace_each_linked_to_the_request(stack: Stack) -> None:
    async with OtlpReceiver() as otlp:
        await stack.start_sandbox()
        api = await stack.start_api(otlp_endpoint=otlp.url)
        async with stack.http.post(
            f"{stack.api_url}/api/v1/notifications/batch",
            json={
                "notifications": [
                    {"channel": "sms", "recipient": "+14155550123", "content": f"b{i}"} for i in range(3)
                ]
            },
        ) as r:
            assert r.status == 201
            items = (await r.json())["notifications"]
        assert await asyncio.to_thread(api.terminate) == 0
    traces = {i["trace_id"] for i in items}
    assert len(traces) == 3
    [server] = [s for s in otlp.spans if s.kind == SpanPb.SPAN_KIND_SERVER]
    assert server.name == "POST /api/v1/notifications/batch" and server.trace_id not in traces
    roots = [s for s in otlp.spans if s.name == "notification accepted"]
    assert {r.trace_id for r in roots} == traces and all(r.parent_id == "" for r in roots)
    assert {r.attributes["notification.id"] for r in roots} == {i["id"] for i in items}


# --- metrics ------------------------------------------------------------------------------------------------


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    async with http.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: Samples,
    name: str,
    *,
    missing: float | None = None,
    **labels: str,
) -> float:
    """The sum of the samples of ``name`` with these labels. A metric that is not exported fails the test,
    unless ``missing`` says what its absence means (a labelled counter before its first increment)."""
    matching = [
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    ]
    if not matching:
        assert missing is not None, f"{name}{labels} is not exported"
        return missing
    return sum(matching)


async def test_prometheus_metrics_of_api_and_worker_move_as_notifications_flow(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api(metrics_refresh_s="0.5")
    await stack.start_worker(metrics_refresh_s="0.5")
    api, worker = stack.api_url, stack.workers["worker"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{worker}/health/ready") as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with http.get(f"{worker}/health") as r:
            assert r.status == 200
        before_api, before_worker = await scrape(http, api), await scrape(http, worker)

        ids = [(await stack.send_sms(f"m{i}"))["id"] for i in range(5)]
        for nid in ids:
            await wait_status(stack, nid, "delivered")

        def delta(
            after: Samples, before: Samples, name: str, missing: float | None = None, **labels: str
        ) -> float:
            return value(after, name, missing=missing, **labels) - value(before, name, missing=0, **labels)

        route = "/api/v1/notifications"
        http_labels = {"route": route, "method": "POST"}
        api_counters: list[tuple[str, dict[str, str]]] = [
            ("notify_notifications_accepted_total", {"channel": "sms"}),
            ("notify_http_requests_total", {"status": "201", **http_labels}),
            ("notify_http_request_duration_seconds_count", http_labels),
        ]
        worker_counters: list[tuple[str, dict[str, str]]] = [
            ("notify_deliveries_total", {"channel": "sms", "outcome": "delivered"}),
            ("notify_delivery_latency_seconds_count", {"channel": "sms"}),
            ("notify_delivery_attempts_total", {"channel": "sms"}),
            # Counted once the round is over, after the status is stored: it can lag the status read above.
            ("notify_delivery_rounds_total", {"channel": "sms", "outcome": "delivered"}),
            ("notify_rate_limiter_wait_seconds_count", {"channel": "sms"}),
        ]

        async def moved() -> tuple[Samples, Samples] | None:
            a, w = await scrape(http, api), await scrape(http, worker)
            reached = all(
                delta(a, before_api, name, missing=0, **labels) >= 5 for name, labels in api_counters
            ) and all(
                delta(w, before_worker, name, missing=0, **labels) >= 5 for name, labels in worker_counters
            )
            return (a, w) if reached else None

        after_api, after_worker = await eventually(
            moved, what="every counter to count the five notifications"
        )
        for name, labels in api_counters:
            assert delta(after_api, before_api, name, **labels) == 5, name
        for name, labels in worker_counters:
            assert delta(after_worker, before_worker, name, **labels) == 5, name
        assert value(after_worker, "notify_breaker_state", breaker="sms:sandbox") == 0  # closed
        normal_topic = f"{stack.prefix}.normal"

        def published(a: Samples, w: Samples) -> float:
            # Five dispatch records and ten status events (processing, delivered), whichever relay sent them.
            return delta(a, before_api, "notify_outbox_published_total", missing=0) + delta(
                w, before_worker, "notify_outbox_published_total", missing=0
            )

        async def gauges_settled() -> tuple[Samples, Samples] | None:
            a, w = await scrape(http, api), await scrape(http, worker)
            lag = [
                v
                for (n, ls), v in w.items()
                if n == "notify_consumer_lag" and dict(ls)["topic"] == normal_topic
            ]
            # The backlog gauges are refreshed every 0.5 s: one computed before the last status event was
            # written reads 0 too early. The published counters say when the relays are done.
            settled = (
                lag == [0.0]
                and value(a, "notify_outbox_backlog") == 0
                and value(w, "notify_outbox_backlog") == 0
                and published(a, w) >= 15
            )
            return (a, w) if settled else None

        settled_api, settled_worker = await eventually(
            gauges_settled, what="consumer lag and outbox backlog gauges at 0, every record published"
        )
        assert published(settled_api, settled_worker) == 15

    # And the per-channel summary of the public API agrees.
    async with stack.http.get(f"{api}/api/v1/metrics") as r:
        assert r.status == 200
        sms = (await r.json())["channels"]["sms"]
    assert sms["sent"] == 5 and sms["failed"] == 0 and sms["success_rate"] == 1.0
    assert sms["queue_depth"] == 0 and sms["p95_latency_ms"] is not None


async def test_no_status_event_is_lost_when_the_worker_and_an_api_are_sigkilled(stack: Stack) -> None:
    """Events are written in the transaction of each change, so killing the processes that caused or relayed
    them loses none: for every notification the client sees an unbroken chain pending -> ... -> delivered
    (each event's previous_status is the status of the one before), including the lease recovery."""
    await stack.start_sandbox("--latency-ms", "100")
    api_a = await stack.start_api("api-a")
    await stack.start_api("api-b")
    worker = await stack.start_worker(worker_concurrency=16, worker_lease_s=3, provider_timeout_s=1)
    async with (
        aiohttp.ClientSession() as http,
        live_client(http, stack.apis["api-b"], stack.api_key, "b") as on_b,
    ):
        ids = []
        for i in range(60):
            ids.append((await stack.send_sms(f"m{i}"))["id"])

        async def busy() -> bool:
            return (await stack.sandbox("/stats"))["accepted"] >= 10  # type: ignore[no-any-return]

        await eventually(busy, what="the worker mid-load")
        worker.kill()
        api_a.kill()  # a relay that may hold status events it was about to publish
        # What the dead worker held: its leases are recovered (processing -> pending) once they run out.
        held = await processing_ids(stack)
        assert held, "the kill came when nothing was in flight: nothing to recover"
        assert (await stack.statuses()).get("delivered", 0) < 60, "the kill came too late to test anything"
        await stack.start_worker(
            "worker-restarted", worker_concurrency=16, worker_lease_s=3, provider_timeout_s=1
        )

        def chains_complete() -> bool:
            chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for e in on_b.events:
                chains[e["notification_id"]].append(e)
            return set(chains) == set(ids) and all(c[-1]["status"] == "delivered" for c in chains.values())

        await eventually(
            now_true(chains_complete), what="every notification's events up to delivered", timeout_s=60
        )

    recovered = set()
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in on_b.events:
        chains[e["notification_id"]].append(e)
    for nid, chain in chains.items():
        previous = "pending"
        for event in chain:
            assert event["previous_status"] == previous, (
                nid,
                [(e["previous_status"], e["status"]) for e in chain],
            )
            previous = event["status"]
        assert previous == "delivered"
        if any(e["previous_status"] == "processing" and e["status"] == "pending" for e in chain):
            recovered.add(nid)
    # Exactly the notifications the dead worker held went through lease recovery, and no other.
    assert recovered == held
