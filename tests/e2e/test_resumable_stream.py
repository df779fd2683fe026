"""A client that reconnects gets exactly what it missed: Server-Sent Events with Last-Event-ID and the
WebSocket's ``since``, against the real API, worker, broker and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import Stack
from tests.support import eventually


async def read_sse(response: aiohttp.ClientResponse, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The next ``count`` status events of an SSE stream: (id, data)."""
    out: list[tuple[int, dict[str, Any]]] = []
    event_id, kind = None, None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "status":
            assert event_id is not None
            out.append((event_id, json.loads(line[6:])))
            if len(out) == count:
                return out
        elif line == "":
            event_id, kind = None, None
    raise AssertionError(f"the stream ended after {len(out)} events")


async def stored_event_ids(database_url: str) -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM status_history ORDER BY id")]
    finally:
        await conn.close()


async def all_delivered(stack: Stack, ids: list[str]) -> None:
    async def done() -> bool:
        return [(await stack.get(i))["status"] for i in ids] == ["delivered"] * len(ids)

    await eventually(done, timeout_s=30, what="delivered")


async def test_sse_and_websocket_clients_that_reconnect_get_exactly_what_they_missed(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    url = f"{stack.api_url}/api/v1/events"

    async with stack.http.get(url, timeout=aiohttp.ClientTimeout(total=60)) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["X-Correlation-ID"]  # sent with the stream's headers, before it ends
        first = [(await stack.send_sms(f"first {i}"))["id"] for i in range(3)]
        seen = await read_sse(stream, 6)
    assert {e["notification_id"] for _, e in seen} == set(first)
    last_seen = max(i for i, _ in seen)
    assert all(i == e["event_id"] for i, e in seen)

    # Disconnected: three more go through.
    missed = [(await stack.send_sms(f"missed {i}"))["id"] for i in range(3)]
    await all_delivered(stack, missed)
    expected = [i for i in await stored_event_ids(stack.database_url) if i > last_seen]
    assert len(expected) == 6

    headers = {"Last-Event-ID": str(last_seen)}
    async with stack.http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as stream:
        replayed = await read_sse(stream, 6)
        assert [i for i, _ in replayed] == expected  # exactly the missed ones, in order
        assert {e["notification_id"] for _, e in replayed} == set(missed)
        later = (await stack.send_sms("live again"))["id"]
        live = await read_sse(stream, 2)  # then live ones, none twice
        assert [e["notification_id"] for _, e in live] == [later, later]
        assert [e["status"] for _, e in live] == ["processing", "delivered"]

    # The WebSocket resumes the same way.
    async with stack.http.ws_connect(f"{stack.api_url}/ws") as ws:
        await ws.send_json({"action": "subscribe", "since": last_seen})
        ack = await ws.receive_json(timeout=10)
        assert ack["action"] == "subscribed" and ack["since"] == last_seen
        got = [await ws.receive_json(timeout=10) for _ in range(8)]
        assert [e["event_id"] for e in got] == [
            i for i in await stored_event_ids(stack.database_url) if i > last_seen
        ]

    # A bad Last-Event-ID is a 400 in the error shape.
    async with stack.http.get(url, headers={"Last-Event-ID": "yesterday"}) as r:
        assert r.status == 400 and (await r.json())["code"] == "validation_error"
