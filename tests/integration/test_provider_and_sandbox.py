"""The HTTP provider adapter against the real sandbox gateway over a real socket, knob by knob."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from notify.adapters.provider.calls import parse_retry_after
from notify.adapters.provider.http import HttpProvider, sign
from notify.devtools.processes import free_port
from notify.devtools.sandbox import SandboxState, create_sandbox_app
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[TestServer, SandboxState]]:
    state = SandboxState(seed=7)
    server = TestServer(create_sandbox_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        yield server, state
    finally:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def message(**kw: object) -> ProviderMessage:
    fields: dict[str, object] = {
        "notification_id": uuid4(),
        "attempt": 1,
        "channel": "sms",
        "to": "+14155550123",
        "content": "hi",
        "metadata": {"a": 1},
        "correlation_id": "corr",
    }
    fields.update(kw)
    return ProviderMessage(**fields)  # type: ignore[arg-type]


def provider(server: TestServer, http: aiohttp.ClientSession, timeout_s: float = 2.0) -> HttpProvider:
    return HttpProvider("sandbox", str(server.make_url("/send")), http, timeout_s=timeout_s)


async def test_accepted_call_is_recorded_with_body_and_headers(
    sandbox: tuple[TestServer, SandboxState], http: aiohttp.ClientSession
) -> None:
    server, _ = sandbox
    m = message()
    receipt = await provider(server, http).send(m)
    assert receipt.provider == "sandbox"
    assert receipt.message_id.startswith("sbx-")
    async with http.get(server.make_url(f"/messages?idempotency_key={m.notification_id}")) as r:
        got = await r.json()
    assert got["count"] == 1
    recorded = got["messages"][0]
    assert recorded["body"] == {
        "id": str(m.notification_id),
        "to": m.to,
        "channel": "sms",
        "subject": None,
        "content": "hi",
        "metadata": {"a": 1},
    }
    assert (recorded["attempt"], recorded["correlation_id"]) == ("1", "corr")
    again = await provider(server, http).send(message(notification_id=m.notification_id, attempt=2))
    assert again.message_id == receipt.message_id  # same key, same message: a gateway can drop the repeat
    async with http.get(server.make_url("/stats")) as r:
        stats = await r.json()
    assert stats["duplicates"] == {str(m.notification_id): 2}


async def test_outcomes_map_to_transient_and_permanent(
    sandbox: tuple[TestServer, SandboxState], http: aiohttp.ClientSession
) -> None:
    server, state = sandbox
    p = provider(server, http)
    state.knobs.update({"fail_next": 1, "error_status": 503})
    with pytest.raises(TransientProviderError) as transient:
        await p.send(message())
    assert transient.value.status == 503
    assert transient.value.retriable
    state.knobs.update({"rate_limit_rate": 1.0, "retry_after_s": 7})
    with pytest.raises(TransientProviderError) as limited:
        await p.send(message())
    assert (limited.value.status, limited.value.retry_after_s) == (429, 7.0)
    state.knobs.update({"rate_limit_rate": 0.0, "error_rate": 1.0, "error_status": 400})
    with pytest.raises(PermanentProviderError) as permanent:
        await p.send(message())
    assert permanent.value.status == 400
    assert not permanent.value.retriable
    state.knobs.update({"error_rate": 0.0, "down": True})
    with pytest.raises(TransientProviderError):
        await p.send(message())
    state.knobs.update({"down": False})
    await p.send(message())
    assert state.rejected == 4
    assert len(state.messages) == 1


async def test_timeouts_and_refused_connections_are_transient(
    sandbox: tuple[TestServer, SandboxState], http: aiohttp.ClientSession
) -> None:
    server, state = sandbox
    state.knobs.update({"latency_ms": 500})
    with pytest.raises(TransientProviderError, match="no answer within"):
        await provider(server, http, timeout_s=0.1).send(message())
    closed = HttpProvider("gone", f"http://127.0.0.1:{free_port()}/send", http, timeout_s=1)
    with pytest.raises(TransientProviderError, match="connection failed"):
        await closed.send(message())


async def test_control_endpoint_validates_and_applies_knobs(
    sandbox: tuple[TestServer, SandboxState], http: aiohttp.ClientSession
) -> None:
    server, state = sandbox
    async with http.put(server.make_url("/control"), json={"latency_ms": 5, "error_rate": 0.25}) as r:
        assert r.status == 200
        assert (await r.json())["error_rate"] == 0.25
    for bad in ({"nope": 1}, {"latency_ms": -1}, {"down": "yes"}, [1]):
        async with http.put(server.make_url("/control"), json=bad) as r:
            assert r.status == 400, bad
    assert state.knobs.latency_ms == 5
    async with http.post(server.make_url("/reset")) as r:
        assert r.status == 200


def test_retry_after_parsing() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


async def test_hmac_signature_covers_timestamp_and_body(
    sandbox: tuple[TestServer, SandboxState], http: aiohttp.ClientSession
) -> None:
    import hashlib
    import hmac

    server, _ = sandbox
    signed = HttpProvider("sandbox", str(server.make_url("/send")), http, timeout_s=2, hmac_secret="s3cret")
    m = message()
    await signed.send(m)
    assert sign(b"k", b"{}", timestamp=1) == {
        "X-Notify-Timestamp": "1",
        "X-Notify-Signature": "sha256=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest(),
    }
    async with http.get(server.make_url(f"/messages?idempotency_key={m.notification_id}")) as r:
        recorded = (await r.json())["messages"][0]
    raw = recorded["raw_body"].encode()
    expected = hmac.new(b"s3cret", recorded["timestamp"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert recorded["signature"] == f"sha256={expected}"
