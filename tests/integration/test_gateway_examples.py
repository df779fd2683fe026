"""The worked gateway examples of docs/providers.md (examples/gateways), each between notify's real HTTP
provider client and a stand-in for its provider's API, all over real sockets: what notify concludes
(delivered, transient, permanent) from every kind of answer the provider gives, signatures, and repeats."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from uuid import uuid4

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.credentials import Credentials
from examples.gateways.gateway import Send, create_gateway
from examples.gateways.ses_style import SesStyle
from examples.gateways.twilio_style import TwilioStyle

from notify.adapters.provider.http import HttpProvider
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage

SECRET = "gateway-shared-secret"


@dataclass
class Upstream:
    """A provider's API: answers by recipient (``answers``), records every call it got."""

    answers: dict[str, tuple[int, dict[str, str], Any]]
    accepted: tuple[int, Any]
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0

    def app(self, path: str, recipient_of: Any) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            self.calls.append((dict(request.headers), body))
            await asyncio.sleep(self.delay_s)
            status, headers, data = self.answers.get(
                recipient_of(request, body), (*self.accepted[:1], {}, self.accepted[1])
            )
            return web.json_response(data, status=status, headers=headers)

        app = web.Application()
        app.router.add_post(path, handle)
        return app


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def notify_client(gateway: TestServer, http: aiohttp.ClientSession, secret: str | None) -> HttpProvider:
    """notify's real HTTP provider client, pointed at the gateway, signing with ``secret``."""
    return HttpProvider("gw", str(gateway.make_url("/send")), http, timeout_s=5, hmac_secret=secret)


@dataclass
class Rig:
    upstream: Upstream
    gateway: TestServer
    notify: HttpProvider  # signing with the gateway's secret

    def client(self, http: aiohttp.ClientSession, secret: str | None) -> HttpProvider:
        return notify_client(self.gateway, http, secret)


@pytest.fixture
async def rig(request: pytest.FixtureRequest, http: aiohttp.ClientSession) -> AsyncIterator[Rig]:
    make: Any = request.param
    upstream, path, recipient_of, send_for = make()
    provider_api = await serve(upstream.app(path, recipient_of))
    gateway = await serve(create_gateway(send_for(str(provider_api.make_url(""))), hmac_secret=SECRET))
    rig = Rig(upstream, gateway, notify_client(gateway, http, SECRET))
    try:
        yield rig
    finally:
        await gateway.close()
        await provider_api.close()


# --- Twilio-style ------------------------------------------------------------------------------------------


def twilio_style() -> tuple[Upstream, str, Any, Any]:
    def error(code: int, message: str, status: int) -> dict[str, Any]:
        return {"code": code, "message": message, "status": status}

    upstream = Upstream(
        answers={
            "+15005550001": (400, {}, error(21211, "The 'To' number is not a valid phone number.", 400)),
            "+15005550002": (429, {"Retry-After": "7"}, error(20429, "Too Many Requests", 429)),
            "+15005550003": (500, {}, error(20500, "Internal Server Error", 500)),
            "+15005550004": (401, {}, error(20003, "Authenticate", 401)),
        },
        accepted=(201, {"sid": "SM0123456789abcdef", "status": "queued"}),
    )

    def recipient(request: web.Request, body: bytes) -> str:
        return parse_qs(body.decode())["To"][0]

    def send(base: str) -> Send:
        return TwilioStyle(base.rstrip("/"), "AC123", "token-xyz", "+15005550006")

    return upstream, "/2010-04-01/Accounts/AC123/Messages.json", recipient, send


def sms(to: str = "+14155550123", **kw: Any) -> ProviderMessage:
    fields: dict[str, Any] = {
        "notification_id": uuid4(),
        "attempt": 1,
        "channel": "sms",
        "to": to,
        "content": "Your code is 123456",
    }
    return ProviderMessage(**{**fields, **kw})


@pytest.mark.parametrize("rig", [twilio_style], indirect=True)
async def test_twilio_style_delivers_once_with_the_providers_id(rig: Rig) -> None:
    message = sms()
    receipt = await rig.notify.send(message)
    assert receipt.message_id == "SM0123456789abcdef"
    headers, body = rig.upstream.calls[0]
    assert parse_qs(body.decode()) == {
        "To": ["+14155550123"],
        "From": ["+15005550006"],
        "Body": ["Your code is 123456"],
    }
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"AC123:token-xyz").decode()
    # A retry of what was accepted (notify never got the answer) and concurrent repeats: sent once.
    repeats = await asyncio.gather(
        *(rig.notify.send(sms(notification_id=message.notification_id, attempt=2)) for _ in range(5))
    )
    assert {r.message_id for r in repeats} == {"SM0123456789abcdef"}
    assert len(rig.upstream.calls) == 1


@pytest.mark.parametrize("rig", [twilio_style], indirect=True)
async def test_twilio_style_answers_map_to_what_notify_does(rig: Rig) -> None:
    with pytest.raises(PermanentProviderError, match="21211"):  # the number: no retry can help
        await rig.notify.send(sms("+15005550001"))
    with pytest.raises(TransientProviderError) as throttled:
        await rig.notify.send(sms("+15005550002"))
    assert (throttled.value.status, throttled.value.retry_after_s) == (429, 7.0)
    for down_or_account in ("+15005550003", "+15005550004"):  # provider down; credentials refused
        with pytest.raises(TransientProviderError) as transient:
            await rig.notify.send(sms(down_or_account))
        assert transient.value.status == 503
    # A failure is not remembered as sent: the retry calls the provider again.
    failed = sms("+15005550003")
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await rig.notify.send(failed)
    assert sum(1 for _, body in rig.upstream.calls if b"15005550003" in body) == 3


@pytest.mark.parametrize("rig", [twilio_style], indirect=True)
async def test_unsigned_or_wrongly_signed_calls_send_nothing(rig: Rig, http: aiohttp.ClientSession) -> None:
    for secret in (None, "not-the-secret"):
        with pytest.raises(TransientProviderError, match=r"signature|unsigned") as refused:
            await rig.client(http, secret).send(sms())
        assert (
            refused.value.status == 503
        )  # the operator fixes the secret; nothing is dead-lettered meanwhile
    async with http.post(
        rig.gateway.make_url("/send"),
        data=b"{}",
        headers={"X-Notify-Timestamp": "1", "X-Notify-Signature": "sha256=00"},
    ) as r:
        assert r.status == 503 and "too old" in (await r.json())["error"]
    assert rig.upstream.calls == []


# --- SES-style ---------------------------------------------------------------------------------------------


def ses_style() -> tuple[Upstream, str, Any, Any]:
    def error(kind: str, message: str) -> dict[str, str]:
        return {"__type": kind, "message": message}

    upstream = Upstream(
        answers={
            "rejected@example.com": (
                400,
                {"x-amzn-ErrorType": "MessageRejected:"},
                error("MessageRejected", "Email address is not verified."),
            ),
            "throttled@example.com": (
                429,
                {"x-amzn-ErrorType": "TooManyRequestsException:"},
                error("TooManyRequestsException", "Maximum sending rate exceeded."),
            ),
            "paused@example.com": (
                400,
                {},
                error("SendingPausedException", "Sending is paused for this account."),
            ),
        },
        accepted=(200, {"MessageId": "0102018f-ses-message-id"}),
    )

    def recipient(request: web.Request, body: bytes) -> str:
        return str(json.loads(body)["Destination"]["ToAddresses"][0])

    def send(base: str) -> Send:
        return SesStyle(
            base.rstrip("/"), "eu-west-1", "no-reply@example.com", Credentials("AKIDEXAMPLE", "secret-key")
        )

    return upstream, "/v2/email/outbound-emails", recipient, send


def email(to: str = "ada@example.com", **kw: Any) -> ProviderMessage:
    fields: dict[str, Any] = {
        "notification_id": uuid4(),
        "attempt": 1,
        "channel": "email",
        "to": to,
        "subject": "Receipt",
        "content": "Thanks!",
    }
    return ProviderMessage(**{**fields, **kw})


@pytest.mark.parametrize("rig", [ses_style], indirect=True)
async def test_ses_style_delivers_a_signed_request_once(rig: Rig) -> None:
    message = email()
    assert (await rig.notify.send(message)).message_id == "0102018f-ses-message-id"
    assert (
        await rig.notify.send(email(notification_id=message.notification_id, attempt=2))
    ).message_id == "0102018f-ses-message-id"
    assert len(rig.upstream.calls) == 1
    headers, body = rig.upstream.calls[0]
    sent = json.loads(body)
    assert sent["FromEmailAddress"] == "no-reply@example.com"
    assert sent["Content"]["Simple"]["Subject"]["Data"] == "Receipt"
    assert sent["Content"]["Simple"]["Body"]["Text"]["Data"] == "Thanks!"
    assert sent["EmailTags"] == [{"Name": "notification_id", "Value": str(message.notification_id)}]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/ses/aws4_request" in headers["Authorization"]


@pytest.mark.parametrize("rig", [ses_style], indirect=True)
async def test_ses_style_answers_map_to_what_notify_does(rig: Rig) -> None:
    with pytest.raises(PermanentProviderError, match="MessageRejected"):
        await rig.notify.send(email("rejected@example.com"))
    with pytest.raises(TransientProviderError, match="TooManyRequests") as throttled:
        await rig.notify.send(email("throttled@example.com"))
    assert throttled.value.status == 429
    with pytest.raises(
        TransientProviderError, match="SendingPaused"
    ) as paused:  # the account: wait, not fail
        await rig.notify.send(email("paused@example.com"))
    assert paused.value.status == 503
    with pytest.raises(PermanentProviderError, match="sends email, not sms"):
        await rig.notify.send(sms())
