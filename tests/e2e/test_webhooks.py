"""Status webhooks end to end: the real API and worker deliver to a real receiver on loopback, which verifies
every delivery with the ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from notify.devtools.devstack import create_api_key
from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.support import eventually

FAST = {
    "webhook_poll_interval_s": 0.1,
    "webhook_retry_base_s": 0.2,
    "webhook_retry_cap_s": 1.0,
    "breaker_reset_s": 1.0,  # an endpoint that is down is tried again soon
}


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return data


@dataclass
class Receiver:
    """A webhook receiver: records every request; answers ``status`` (503 while "down") after ``delay_s``."""

    url: str = ""
    status: int = 200
    delay_s: float = 0.0
    calls: list[Received] = field(default_factory=list)

    @property
    def accepted(self) -> list[Received]:
        return [c for c in self.calls if 200 <= c.answered < 300]

    def unique_accepted(self) -> dict[str, Received]:
        return {c.webhook_id: c for c in self.accepted}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.text()
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        state.calls.append(Received(dict(request.headers), body, state.status))
        return web.Response(status=state.status, text="" if state.status < 300 else "down for maintenance")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


async def api(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with stack.http.request(method, f"{stack.api_url}{path}", json=body) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def register(stack: Stack, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    status, created = await api(stack, "POST", "/api/v1/webhooks", {"url": receiver.url, **fields})
    assert status == 201, created
    assert created["secret"].startswith("whsec_")
    return created  # type: ignore[no-any-return]


def verified(calls: list[Received], secret: str) -> list[dict[str, Any]]:
    """Every call verifies with the endpoint's secret (raises otherwise); their bodies."""
    hook = Webhook(secret)
    return [hook.verify(c.body, c.headers) for c in calls]


async def test_every_status_change_arrives_once_signed_and_in_order(stack: Stack, receiver: Receiver) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST)
    endpoint = await register(stack, receiver)
    sent = [(await stack.send_sms(f"n{i}"))["id"] for i in range(5)]

    async def all_arrived() -> bool:
        statuses = defaultdict(list)
        for c in receiver.unique_accepted().values():
            statuses[c.event["notification_id"]].append(c.event["status"])
        return all(sorted(statuses[n]) == ["delivered", "processing"] for n in sent)

    await eventually(all_arrived, timeout_s=30, what="every status change at the receiver")
    bodies = verified(receiver.calls, endpoint["secret"])
    assert {b["type"] for b in bodies} == {"notification.processing", "notification.delivered"}
    assert len(receiver.calls) == len(receiver.unique_accepted()) == 10  # once each, nothing repeated
    by_notification: dict[str, list[Received]] = defaultdict(list)
    for c in receiver.calls:
        by_notification[c.event["notification_id"]].append(c)
    for calls in by_notification.values():
        # Per notification in order of the changes, and orderable by event_id.
        assert [c.event["status"] for c in calls] == ["processing", "delivered"]
        assert calls[0].event["event_id"] < calls[1].event["event_id"]

    # The delivery log says the same, once the worker has recorded every outcome (the receiver sees each call
    # before the worker stores it).
    log: dict[str, Any] = {}

    async def all_recorded() -> bool:
        nonlocal log
        status, log = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries?page_size=100")
        assert status == 200, log
        return len(log["data"]) >= 10 and all(d["status"] == "delivered" for d in log["data"])

    await eventually(all_recorded, timeout_s=10, what="every delivery recorded as delivered")
    assert len(log["data"]) == 10
    assert {(d["status"], d["last_http_status"], d["attempts"]) for d in log["data"]} == {
        ("delivered", 200, 1)
    }
    assert {d["webhook_id"] for d in log["data"]} == set(receiver.unique_accepted())
    status, attempts = await api(
        stack, "GET", f"/api/v1/webhooks/{endpoint['id']}/attempts?delivery_id={log['data'][0]['id']}"
    )
    assert status == 200 and [(a["attempt"], a["http_status"]) for a in attempts["data"]] == [(1, 200)]

    # A rotation: both secrets sign for the overlap, a receiver with either verifies.
    status, rotated = await api(stack, "POST", f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert status == 200 and rotated["secret"] != endpoint["secret"]
    assert rotated["previous_secret_valid_until"] is not None
    before = len(receiver.calls)
    await stack.send_sms("after rotation")

    async def two_more() -> bool:
        return len(receiver.calls) >= before + 2

    await eventually(two_more, timeout_s=30, what="the events after the rotation")
    latest = receiver.calls[before:]
    verified(latest, endpoint["secret"])
    verified(latest, rotated["secret"])

    # Another tenant sees none of it.
    other = await create_api_key(stack.database_url, name="b", tenant_id="tenant-b")
    async with stack.http.get(
        f"{stack.api_url}/api/v1/webhooks/{endpoint['id']}", headers={"Authorization": f"Bearer {other}"}
    ) as r:
        assert r.status == 404


async def test_a_receiver_down_for_a_while_gets_everything_once_it_is_back(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST)
    endpoint = await register(stack, receiver, statuses=["delivered"])
    receiver.status = 503
    sent = [(await stack.send_sms(f"n{i}"))["id"] for i in range(8)]

    async def retried() -> bool:
        # Some deliveries tried more than once (the breaker lets one trial through per cooldown, so not every
        # one is tried while the receiver stays down: nothing is lost by that, they wait in PostgreSQL).
        return len(receiver.calls) >= len({c.webhook_id for c in receiver.calls}) + 3

    await eventually(retried, timeout_s=60, what="deliveries retried while the receiver is down")
    _, listed = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}")
    assert listed["enabled"] is True and listed["failing_since"] is not None
    receiver.status = 200

    async def all_delivered() -> bool:
        return {c.event["notification_id"] for c in receiver.accepted} == set(sent)

    await eventually(all_delivered, timeout_s=60, what="every event after the receiver came back")
    verified(receiver.calls, endpoint["secret"])
    # Retries carry the same webhook-id: 8 events, however many calls.
    assert len(receiver.unique_accepted()) == 8
    assert {c.webhook_id for c in receiver.calls} == set(receiver.unique_accepted())
    # The receiver sees a 200 before the worker records it: wait until the log says every one is delivered.
    log: dict[str, Any] = {}

    async def all_recorded() -> bool:
        nonlocal log
        _, log = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries?page_size=100")
        return len(log["data"]) == 8 and all(d["status"] == "delivered" for d in log["data"])

    await eventually(all_recorded, timeout_s=10, what="every delivery recorded as delivered")
    # The attempts ledger of a retried delivery: the refusals, then the success.
    retried = next(d for d in log["data"] if d["attempts"] > 1)
    _, attempts = await api(
        stack, "GET", f"/api/v1/webhooks/{endpoint['id']}/attempts?delivery_id={retried['id']}"
    )
    codes = [a["http_status"] for a in attempts["data"]]
    assert codes[-1] == 200 and set(codes[:-1]) == {503} and len(codes) == retried["attempts"]

    async def healthy() -> bool:
        _, after = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}")
        return after["failing_since"] is None

    await eventually(healthy, timeout_s=10, what="the endpoint no longer failing")


async def test_an_endpoint_failing_too_long_is_disabled_and_says_why_then_resumes(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST, webhook_disable_after_s=1)
    endpoint = await register(stack, receiver, statuses=["delivered"])
    receiver.status = 500
    first = (await stack.send_sms("one"))["id"]

    async def disabled() -> bool:
        _, found = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}")
        return found["enabled"] is False

    await eventually(disabled, timeout_s=30, what="the endpoint disabled")
    _, found = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}")
    assert "HTTP 500" in found["disabled_reason"] and "failing since" in found["disabled_reason"]
    calls = len(receiver.calls)
    await asyncio.sleep(1.0)
    assert len(receiver.calls) == calls  # a disabled endpoint is not called

    receiver.status = 200
    status, enabled = await api(stack, "PATCH", f"/api/v1/webhooks/{endpoint['id']}", {"enabled": True})
    assert status == 200 and enabled["enabled"] and enabled["disabled_reason"] is None
    second = (await stack.send_sms("two"))["id"]

    async def both() -> bool:
        return {c.event["notification_id"] for c in receiver.accepted} == {first, second}

    await eventually(both, timeout_s=30, what="what waited, and what came after, delivered")
    # The receiver sees the 200 before the worker records it: wait until the log has both as delivered.
    log: dict[str, Any] = {}

    async def both_recorded() -> bool:
        nonlocal log
        _, log = await api(stack, "GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries?status=delivered")
        return {d["notification_id"] for d in log["data"]} == {first, second}

    await eventually(both_recorded, timeout_s=10, what="both deliveries recorded as delivered")

    # Replaying one delivery sends it again with the same webhook-id.
    chosen = log["data"][0]
    status, replayed = await api(
        stack, "POST", f"/api/v1/webhooks/{endpoint['id']}/deliveries/replay", {"delivery_id": chosen["id"]}
    )
    assert status == 202 and replayed["status"] == "pending"

    async def again() -> bool:
        return sum(c.webhook_id == chosen["webhook_id"] for c in receiver.accepted) == 2

    await eventually(again, timeout_s=30, what="the replayed delivery")


async def test_a_sigkilled_worker_loses_no_webhook(stack: Stack, receiver: Receiver) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    worker = await stack.start_worker("w1", **FAST, webhook_timeout_s=1, webhook_lease_s=2.5)
    endpoint = await register(stack, receiver, statuses=["delivered"])
    receiver.delay_s = 0.2  # the worker holds deliveries in flight when it dies
    sent = [(await stack.send_sms(f"n{i}"))["id"] for i in range(20)]

    async def some() -> bool:
        return len(receiver.accepted) >= 3

    await eventually(some, timeout_s=30, what="the first webhooks")
    worker.kill()
    await stack.start_worker("w2", **FAST, webhook_timeout_s=1, webhook_lease_s=2.5)

    async def all_arrived() -> bool:
        return {c.event["notification_id"] for c in receiver.accepted} == set(sent)

    await eventually(all_arrived, timeout_s=90, what="every webhook after the worker was killed")
    verified(receiver.calls, endpoint["secret"])
    # A delivery the dead worker had sent but not recorded is sent again: with the same webhook-id.
    assert len(receiver.unique_accepted()) == 20
