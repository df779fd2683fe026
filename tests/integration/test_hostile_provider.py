"""A provider that answers with garbage cannot make an outcome unstorable: the real HTTP provider adapter, the
real Deliverer and PostgreSQL, against a gateway in this test that answers whatever it is told to.

Before these were bounded, each answer below made storing the outcome fail, so the lease ran out and the
notification was sent again, forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from notify.adapters.clock import SystemClock
from notify.adapters.postgres.store import PgNotificationStore
from notify.adapters.provider.http import HttpProvider
from notify.adapters.resilience import AioCircuitBreaker
from notify.app.delivery import Deliverer, DeliveryOutcome, Route
from notify.app.notifications import NewNotification, NotificationService
from notify.devtools.processes import free_port
from notify.domain.model import Channel, Status
from notify.domain.retry import RetryPolicy

Answer = tuple[int, dict[str, str], bytes]


class HostileGateway:
    def __init__(self) -> None:
        self.answer: Answer = (200, {}, b"{}")

    async def send(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        status, headers, body = self.answer
        return web.Response(status=status, headers=headers, body=body, content_type="application/json")


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[HostileGateway, str]]:
    hostile = HostileGateway()
    app = web.Application()
    app.router.add_post("/send", hostile.send)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield hostile, f"http://127.0.0.1:{port}/send"
    finally:
        await runner.cleanup()


ANSWERS: dict[str, tuple[Answer, Status]] = {
    "NUL and a lone surrogate in the message id": (
        (200, {}, b'{"message_id": "abc\\u0000def\\ud800"}'),
        Status.DELIVERED,
    ),
    "a message id of a megabyte": (
        (200, {}, b'{"message_id": "' + b"x" * 1_000_000 + b'"}'),
        Status.DELIVERED,
    ),
    "invalid UTF-8 where JSON was expected": ((200, {}, b'\xff\xfe{"id": 1'), Status.DELIVERED),
    "an error page with NUL bytes and invalid UTF-8": (
        (500, {}, b"\x00\xff boom \x00" * 100_000),
        Status.RETRYING,
    ),
    "a Retry-After of 400 digits": ((429, {"Retry-After": "9" * 400}, b"slow down"), Status.RETRYING),
    "a Retry-After in the year 9999": (
        (503, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, b"maintenance"),
        Status.RETRYING,
    ),
    "a permanent refusal in NULs": ((400, {}, b"\x00" * 5000), Status.FAILED),
}


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_whatever_a_provider_answers_the_outcome_is_stored(
    case: str, gateway: tuple[HostileGateway, str], pool: asyncpg.Pool
) -> None:
    hostile, url = gateway
    answer, expected = ANSWERS[case]
    hostile.answer = answer
    clock, store = SystemClock(), PgNotificationStore(pool)
    policy = RetryPolicy(base_s=0.01, cap_s=0.01, max_retry_after_s=3600)
    n = await NotificationService(store, clock).create(
        "t1", NewNotification(Channel.SMS, "+14155550123", "hello")
    )
    async with aiohttp.ClientSession() as http:
        provider = HttpProvider("hostile", url, http, timeout_s=5)
        breaker = AioCircuitBreaker("sms:hostile", fail_max=100, reset_timeout_s=30)
        deliverer = Deliverer(
            store,
            {c: [Route(provider, breaker)] for c in Channel},
            clock,
            worker_id="w",
            lease=timedelta(seconds=60),
            policy=policy,
        )
        outcome = await deliverer.deliver(n.id)
    assert outcome is DeliveryOutcome(expected.value)  # stored: not CLAIM_LOST, not an exception
    stored = await store.get("t1", n.id)
    assert stored is not None and stored.status is expected
    if stored.provider_message_id is not None:
        assert "\x00" not in stored.provider_message_id and len(stored.provider_message_id) <= 255
    if stored.error_message is not None:
        assert "\x00" not in stored.error_message and len(stored.error_message) <= 2000
    if expected is Status.RETRYING:
        assert stored.next_attempt_at is not None
        assert stored.next_attempt_at - stored.updated_at <= timedelta(seconds=3600)
    ledger = await store.attempts("t1", n.id)
    assert ledger is not None and len(ledger) == 1
