"""``GET /ws`` over real HTTP, in process: the LiveEndpoint on a LiveHub, the real Authenticator over a fake
key store, and the real error middleware. Needs neither Kafka nor PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from notify.adapters.http.errors import error_middleware
from notify.adapters.http.live import LiveEndpoint
from notify.app.auth import Authenticator, KeyService
from notify.app.live import LiveHub
from notify.domain.events import StatusEvent
from notify.domain.keys import KeyScope
from tests.fakes import FakeApiKeyStore, FakeClock, FakeStatusEvents, status_event

Client = TestClient[web.Request, web.Application]


@dataclass
class Live:
    client: Client
    hub: LiveHub
    endpoint: LiveEndpoint
    key_a: str  # tenant-a
    key_b: str  # tenant-b
    authenticator: Authenticator
    store: FakeApiKeyStore
    clock: FakeClock

    async def connect(self, key: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.client.ws_connect("/ws", headers={"Authorization": f"Bearer {key}"}, **kwargs)


@asynccontextmanager
async def serve(capacity: int = 100, events: FakeStatusEvents | None = None) -> AsyncIterator[Live]:
    store, clock = FakeApiKeyStore(), FakeClock()
    keys = KeyService(store, clock)
    _, key_a = await keys.create("a", "tenant-a")
    _, key_b = await keys.create("b", "tenant-b")
    hub = LiveHub(capacity=capacity)
    authenticator = Authenticator(store, clock)
    endpoint = LiveEndpoint(hub, authenticator, heartbeat_s=30, max_per_key=3, recheck_s=0.1, events=events)
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/ws", endpoint.handle)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Live(client, hub, endpoint, key_a, key_b, authenticator, store, clock)


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    async with serve() as running:
        yield running


def event(notification_id: str, tenant_id: str = "tenant-a", **fields: Any) -> StatusEvent:
    return status_event(notification_id, tenant_id, **fields)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type is WSMsgType.TEXT, (message.type, message.data, message.extra)
    received: dict[str, Any] = json.loads(message.data)
    return received


async def subscribe(ws: aiohttp.ClientWebSocketResponse, **wanted: list[str]) -> dict[str, Any]:
    await ws.send_json({"action": "subscribe", **wanted})
    ack = await receive(ws)
    assert ack["action"] == "subscribed", ack
    return ack


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():
            await asyncio.sleep(0.005)


# --- before the upgrade -------------------------------------------------------------------------------------


async def test_no_key_or_a_wrong_key_is_401_in_the_error_shape(live: Live) -> None:
    for headers in ({}, {"Authorization": "Bearer ntf_not-a-key"}, {"Authorization": "Basic abc"}):
        resp = await live.client.get("/ws", headers=headers)
        assert resp.status == 401, headers
        body = await resp.json()
        assert set(body) == {"error", "code", "details"}
        assert body["code"] == "unauthorized" and body["details"] == []
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await live.client.ws_connect("/ws")
    assert info.value.status == 401
    assert live.hub.subscribers == 0


async def test_a_plain_get_with_a_key_is_400(live: Live) -> None:
    resp = await live.client.get("/ws", headers={"Authorization": f"Bearer {live.key_a}"})
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "validation_error"
    assert [d["field"] for d in body["details"]] == ["Upgrade"]
    assert live.hub.subscribers == 0


async def test_a_key_in_the_url_is_refused_and_a_single_use_token_stands_for_it(live: Live) -> None:
    resp = await live.client.get(f"/ws?api_key={live.key_a}")
    error = await resp.json()
    assert (resp.status, error["code"], error["details"][0]["field"]) == (400, "validation_error", "api_key")

    key = await live.authenticator.authenticate(f"Bearer {live.key_a}")
    token, expires_at = await live.authenticator.issue_live_token(key)
    ws = await live.client.ws_connect(f"/ws?token={token}")
    await subscribe(ws)
    live.hub.publish(event("n-1"))  # tenant-a's: the token acts for key a
    assert (await receive(ws))["notification_id"] == "n-1"
    await ws.close()
    again = await live.client.get(f"/ws?token={token}")  # used once already
    assert (again.status, (await again.json())["code"]) == (401, "unauthorized")
    late, _ = await live.authenticator.issue_live_token(key)
    live.clock.current = expires_at + timedelta(seconds=1)
    expired = await live.client.get(f"/ws?token={late}")
    assert expired.status == 401


async def test_a_key_has_a_bounded_number_of_streams(live: Live) -> None:
    open_ = [await live.connect(live.key_a) for _ in range(3)]  # the fixture's limit
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await live.connect(live.key_a)
    assert refused.value.status == 429
    other = await live.connect(live.key_b)  # another key is not held by it
    key_a = await live.authenticator.authenticate(f"Bearer {live.key_a}")
    await open_[0].close()
    await until(lambda: live.endpoint._per_key.get(key_a.id) == 2)
    replacement = await live.connect(live.key_a)  # room again once one closed
    for ws in [*open_[1:], other, replacement]:
        await ws.close()


async def test_the_stream_of_a_revoked_key_is_closed_with_1008(live: Live) -> None:
    ws = await live.connect(live.key_a)
    await subscribe(ws)
    key = await live.authenticator.authenticate(f"Bearer {live.key_a}")
    await KeyService(live.store, live.clock).revoke(key.id)
    live.clock.advance(60)  # past the cache time: the next check sees the revocation
    message = await asyncio.wait_for(ws.receive(), 10)
    assert message.type is WSMsgType.CLOSE, message
    assert (message.data, message.extra) == (WSCloseCode.POLICY_VIOLATION, "API key revoked")


# --- messages -----------------------------------------------------------------------------------------------


async def test_subscribe_is_acknowledged_with_the_filter(live: Live) -> None:
    ws = await live.connect(live.key_a)
    n1, n2, b1 = str(uuid4()), str(uuid4()), str(uuid4())
    await ws.send_json(
        {"action": "subscribe", "notification_ids": [n2, n1], "batch_ids": [b1], "channels": ["sms"]}
    )
    assert await receive(ws) == {
        "action": "subscribed",
        "notification_ids": sorted([n1, n2]),
        "batch_ids": [b1],
        "channels": ["sms"],
    }
    assert await subscribe(ws) == {
        "action": "subscribed",
        "notification_ids": [],
        "batch_ids": [],
        "channels": [],
    }
    await ws.close()


async def test_an_invalid_message_is_answered_with_an_error_and_the_connection_stays_open(live: Live) -> None:
    ws = await live.connect(live.key_a)
    invalid: list[Callable[[], Any]] = [
        lambda: ws.send_str("not json"),
        lambda: ws.send_json({"action": "unsubscribe"}),
        lambda: ws.send_json({"action": "subscribe", "channels": ["fax"]}),
        lambda: ws.send_json({"action": "subscribe", "notification_ids": ["not-a-uuid"]}),
        lambda: ws.send_json({"action": "subscribe", "unknown": 1}),
    ]
    for send in invalid:
        await send()
        error = await receive(ws)
        assert error["action"] == "error" and error["code"] == "invalid_message", error
        assert isinstance(error["error"], str) and error["error"]
        assert error["details"] and all({"field", "message", "code"} <= set(d) for d in error["details"])
    await ws.send_bytes(b"\x00")
    assert (await receive(ws))["code"] == "binary_frame"
    assert not ws.closed
    await subscribe(ws, channels=["email"])  # still open and still listening
    live.hub.publish(event("n-1", channel="email"))
    assert (await receive(ws))["notification_id"] == "n-1"
    await ws.close()


# --- events -------------------------------------------------------------------------------------------------


async def test_events_reach_clients_filtered_by_tenant_and_subscription(live: Live) -> None:
    everything_a = await live.connect(live.key_a)
    picky_a = await live.connect(live.key_a)
    everything_b = await live.connect(live.key_b)
    x, y, z, batch = (str(uuid4()) for _ in range(4))
    await subscribe(everything_a)
    await subscribe(picky_a, notification_ids=[x], batch_ids=[batch], channels=["sms"])
    await subscribe(everything_b)
    assert live.hub.subscribers == 3

    for published in [
        event(x, status="processing"),
        event(y),  # another notification
        event(z, batch_id=batch),  # in the subscribed batch
        event(str(uuid4()), batch_id=batch, channel="email"),  # in the batch, other channel
        event("b-only", "tenant-b"),
        event(x, status="delivered"),  # last: everything before it has been sent
    ]:
        live.hub.publish(published)
    got_a = [await receive(everything_a) for _ in range(5)]
    assert [(e["notification_id"], e["status"]) for e in got_a][-1] == (x, "delivered")
    assert "b-only" not in [e["notification_id"] for e in got_a]
    assert set(got_a[0]) == {
        "event_id",
        "notification_id",
        "batch_id",
        "channel",
        "priority",
        "status",
        "previous_status",
        "attempt",
        "error",
        "provider",
        "next_attempt_at",
        "timestamp",
    }
    got_picky = [await receive(picky_a) for _ in range(3)]
    assert [(e["notification_id"], e["status"]) for e in got_picky] == [
        (x, "processing"),
        (z, "delivered"),
        (x, "delivered"),
    ]
    assert (await receive(everything_b))["notification_id"] == "b-only"
    live.hub.publish(event("b-2", "tenant-b"))
    assert (await receive(everything_b))["notification_id"] == "b-2"  # nothing of tenant-a came before it
    for ws in (everything_a, picky_a, everything_b):
        await ws.close()


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket that buffers little, so a client that does not read backs up the server quickly."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@asynccontextmanager
async def slow_client(live: Live) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A subscribed client of tenant-a on a socket with a small receive buffer; it reads only when told."""
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as session:
        ws = await session.ws_connect(
            live.client.make_url("/ws"), headers={"Authorization": f"Bearer {live.key_a}"}
        )
        await subscribe(ws)
        yield ws


def big_event(i: int) -> StatusEvent:
    return event(f"n-{i}", error=BIG_ERROR)


BIG_ERROR = os.urandom(256 * 1024).hex()  # 512 KiB of error text: a few events fill a socket's buffers


def sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None, f"{name} is not exported"
    return value


async def test_a_client_whose_queue_overflows_is_closed_with_1013_and_another_keeps_everything() -> None:
    # capacity (2) applies to each subscriber. Both clients get the 50 sms events, each published once the
    # previous one has arrived; only the first also matches a burst of email events published at once (as a
    # batch read from the status topic is), more than its queue holds.
    async with serve(capacity=2) as live:
        dropped_metric = sample("notify_ws_clients_dropped_total")
        overflowing = await live.connect(live.key_a)
        await subscribe(overflowing)
        steady = await live.connect(live.key_a)
        await subscribe(steady, channels=["sms"])
        received = []
        for i in range(50):
            live.hub.publish(event(f"n-{i}"))
            if i == 25:
                for _ in range(3):
                    live.hub.publish(event(str(uuid4()), channel="email"))
                assert live.hub.subscribers == 1  # the overflowing one was dropped
            received.append((await receive(steady))["notification_id"])
        assert received == [f"n-{i}" for i in range(50)]

        before_close = []
        while (message := await asyncio.wait_for(overflowing.receive(), 5)).type is WSMsgType.TEXT:
            before_close.append(json.loads(message.data)["notification_id"])
        assert message.type is WSMsgType.CLOSE, message
        assert message.data == WSCloseCode.TRY_AGAIN_LATER
        assert message.extra == "too slow: more than 2 events waiting"
        assert before_close == [f"n-{i}" for i in range(len(before_close))] and len(before_close) <= 26
        assert sample("notify_ws_clients_dropped_total") == dropped_metric + 1
        live.hub.publish(event("after"))
        assert (await receive(steady))["notification_id"] == "after"
        await steady.close()


async def test_a_client_that_stops_reading_is_dropped_without_holding_up_the_others() -> None:
    # Here the queue fills because the client stopped reading: its socket backs up (large events, a small
    # receive buffer) and its pump waits on it.
    async with serve(capacity=2) as live:
        fast = await live.connect(live.key_a)
        await subscribe(fast)
        async with slow_client(live):  # never reads
            received = []
            for i in range(50):
                assert live.hub.publish(big_event(i)) >= 1  # returns at once, whoever is slow
                received.append((await receive(fast))["notification_id"])
            assert received == [f"n-{i}" for i in range(50)]
            assert live.hub.subscribers == 1  # the slow one was dropped
        live.hub.publish(event("after"))
        assert (await receive(fast))["notification_id"] == "after"
        await fast.close()


async def test_a_stalled_client_is_closed_and_counted_once_it_is_dropped() -> None:
    async with serve(capacity=2) as live:
        dropped, connected = sample("notify_ws_clients_dropped_total"), sample("notify_ws_clients")
        fast = await live.connect(live.key_a)
        await subscribe(fast)
        async with slow_client(live):  # and it never reads again
            for i in range(50):
                live.hub.publish(big_event(i))
                await receive(fast)
            assert live.hub.subscribers == 1  # the slow one was dropped
            # _close gives a client 2 s to take the close frame, then drops the connection.
            await until(
                lambda: (
                    sample("notify_ws_clients_dropped_total") == dropped + 1
                    and sample("notify_ws_clients") == connected + 1
                ),
                within_s=30,
            )
        await fast.close()


async def test_shutdown_drops_stalled_clients_and_closes_healthy_ones_with_1001() -> None:
    async with serve(capacity=1000) as live, slow_client(live), slow_client(live), slow_client(live):
        stalled = list(live.endpoint._sockets.values())  # their server-side transports
        healthy = await live.connect(live.key_b)
        subscribed = live.hub.subscribers
        for i in range(20):  # enough to back up all three sockets; none is dropped (capacity 1000)
            live.hub.publish(big_event(i))
            await asyncio.sleep(0.01)
        assert live.hub.subscribers == subscribed  # none dropped
        assert [t is not None and t.is_closing() for t in stalled] == [False, False, False]
        await asyncio.wait_for(live.endpoint.shutdown(), 30)
        # A stalled client could not take a close frame: its connection is dropped. The healthy one is told.
        assert [t is not None and t.is_closing() for t in stalled] == [True, True, True]
        message = await asyncio.wait_for(healthy.receive(), 30)
        assert message.type is WSMsgType.CLOSE and message.data == WSCloseCode.GOING_AWAY


async def test_shutdown_closes_every_client_with_1001(live: Live) -> None:
    clients = [await live.connect(live.key_a), await live.connect(live.key_b)]
    for ws in clients:
        await subscribe(ws)
    assert live.hub.subscribers == 2
    shutdown = asyncio.create_task(live.endpoint.shutdown())
    await asyncio.sleep(0)  # shutdown has begun
    assert live.hub.publish(event("too-late")) == 0 and live.hub.subscribers == 0
    for ws in clients:
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type is WSMsgType.CLOSE, message
        assert message.data == WSCloseCode.GOING_AWAY
    await asyncio.wait_for(shutdown, 5)
    assert live.hub.subscribers == 0
    await until(lambda: all(ws.closed for ws in clients))


async def test_an_admin_key_may_watch_every_tenant_and_a_tenant_key_may_not(live: Live) -> None:
    _, admin = await KeyService(live.store, live.clock).create("ops", "ops", scope=KeyScope.ADMIN)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await live.client.ws_connect("/ws?tenants=all", headers={"Authorization": f"Bearer {live.key_a}"})
    assert refused.value.status == 403
    operator = await live.client.ws_connect("/ws?tenants=all", headers={"Authorization": f"Bearer {admin}"})
    own = await live.connect(admin)  # without ?tenants=all: its own tenant's only
    await subscribe(operator)
    await subscribe(own)
    live.hub.publish(event("for-a", "tenant-a"))
    live.hub.publish(event("for-b", "tenant-b"))
    live.hub.publish(event("for-ops", "ops"))
    got = [await receive(operator) for _ in range(3)]
    assert [(e["notification_id"], e["tenant_id"]) for e in got] == [
        ("for-a", "tenant-a"),
        ("for-b", "tenant-b"),
        ("for-ops", "ops"),
    ]
    assert (await receive(own))["notification_id"] == "for-ops"
    await operator.close()
    await own.close()


async def test_a_client_resuming_with_since_gets_what_it_missed_then_live_events_none_twice() -> None:
    stored = FakeStatusEvents(
        [
            status_event("old", "tenant-a", event_id=5),
            status_event("missed-1", "tenant-a", event_id=7, status="processing"),
            status_event("other-tenant", "tenant-b", event_id=8),
            status_event("missed-2", "tenant-a", event_id=9, channel="email"),
            status_event("missed-3", "tenant-a", event_id=10),
        ]
    )
    async with serve(events=stored) as live:
        ws = await live.connect(live.key_a)
        await ws.send_str(json.dumps({"action": "subscribe", "since": 5, "channels": ["sms"]}))
        ack = await receive(ws)
        assert ack["action"] == "subscribed" and ack["since"] == 5
        # Live events published while the replay runs: one it also replays (same event id), one newer.
        live.hub.publish(status_event("missed-3", "tenant-a", event_id=10))
        live.hub.publish(status_event("new", "tenant-a", event_id=11))
        got = [await receive(ws) for _ in range(3)]
        assert [(e["notification_id"], e["event_id"]) for e in got] == [
            ("missed-1", 7),
            ("missed-3", 10),  # the email one is filtered out; the live twin of 10 is not sent again
            ("new", 11),
        ]
        assert stored.reads[0] == ("tenant-a", 5)
        live.hub.publish(status_event("later", "tenant-a", event_id=12))
        assert (await receive(ws))["notification_id"] == "later"
        await ws.close()
