"""What a client can make the API hold: nothing before it is authenticated and routed, a bounded body within a
bounded time after, and a bounded number of failed guesses at keys. Raw sockets, so a test can send headers
and then stall, as an attacker would."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from tests.conftest import Stack


async def raw(stack: Stack, request: bytes) -> tuple[int, dict[str, object]]:
    """Send ``request`` (headers, maybe part of a body) and keep the connection open without sending the
    rest; the status and JSON body of the answer, which must come without the rest."""
    url = urlsplit(stack.api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=15)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), timeout=15)
        return status, json.loads(body)
    finally:
        writer.close()


def post(path: str, content_length: int, key: str | None = None, body: bytes = b"") -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode() + body


async def test_nothing_is_read_from_a_client_that_is_not_authenticated_or_not_routed(stack: Stack) -> None:
    await stack.start_api()
    eight_mib = 8 * 1024 * 1024
    # Each declares 8 MiB and sends none of it: the answer comes at once, without waiting for (or holding)
    # the body.
    for path, key, expected in [
        ("/api/v1/notifications", None, (401, "unauthorized")),
        ("/api/v1/notifications", "ntf_not-even-shaped-like-a-key", (401, "unauthorized")),
        ("/no/such/route", None, (404, "not_found")),
        ("/health", None, (405, "method_not_allowed")),
        ("/api/v1/no-such-route", stack.api_key, (404, "not_found")),
    ]:
        status, answer = await raw(stack, post(path, eight_mib, key))
        assert (status, answer["code"]) == expected, (path, answer)


async def test_an_authenticated_body_is_bounded_per_route_in_size_and_time(stack: Stack) -> None:
    await stack.start_api(max_body_bytes=8 * 1024 * 1024)
    # One notification never needs more than 1 MiB: refused from the declared length, before reading.
    status, answer = await raw(stack, post("/api/v1/notifications", 2 * 1024 * 1024, stack.api_key))
    assert (status, answer["code"]) == (413, "payload_too_large")
    # A batch may be larger; a body that stops arriving is cut off (408) instead of held open.
    status, answer = await raw(stack, post("/api/v1/notifications/batch", 4096, stack.api_key, b'{"notif'))
    assert (status, answer["code"]) == (408, "request_timeout")


async def test_guessing_keys_is_cut_off_per_client_before_any_lookup(stack: Stack) -> None:
    await stack.start_api(api_failed_auth_per_s=5)  # 20 at once
    statuses = []
    for i in range(40):
        async with stack.http.get(
            f"{stack.api_url}/api/v1/notifications",
            headers={"Authorization": f"Bearer ntf_{'A' * 42}{i % 10}"},  # shaped like keys, unknown
        ) as r:
            statuses.append(r.status)
            if r.status == 429:
                assert (await r.json())["code"] == "rate_limited" and "Retry-After" in r.headers
    assert statuses[:20] == [401] * 20  # the burst of failures a client gets
    assert 429 in statuses[20:]
    async with stack.http.get(f"{stack.api_url}/health") as r:  # open routes are not held
        assert r.status == 200
