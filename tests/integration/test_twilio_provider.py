"""The Twilio provider against a stand-in speaking Twilio's Messages API over a real socket: the request it
sends, and how each documented answer is classified."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from notify.adapters.provider.twilio import TwilioConfig, TwilioProvider
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage
from tests.standins.twilio import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    INVALID_NUMBER,
    NOT_MOBILE,
    TwilioStandIn,
)


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioStandIn, str, aiohttp.ClientSession]]:
    standin = TwilioStandIn()
    async with TestServer(standin.app()) as server, aiohttp.ClientSession() as session:
        yield standin, str(server.make_url("")).rstrip("/"), session


def provider(base_url: str, session: aiohttp.ClientSession, **overrides: Any) -> TwilioProvider:
    config: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "username": ACCOUNT_SID,
        "password": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": base_url,
        "timeout_s": 5.0,
    }
    return TwilioProvider("twilio", TwilioConfig(**(config | overrides)), session)


def sms(to: str = "+14155550123") -> ProviderMessage:
    return ProviderMessage(
        notification_id=uuid.uuid4(), attempt=1, channel="sms", to=to, content="Code 123456"
    )


async def test_a_message_is_created_and_its_sid_kept(
    twilio: tuple[TwilioStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = twilio
    receipt = await provider(url, session, status_callback_url="https://notify.example/cb").send(sms())
    [sent] = standin.messages
    assert receipt.provider == "twilio" and receipt.message_id == sent["sid"]
    assert sent["sid"].startswith("SM")
    assert {k: sent[k] for k in ("To", "From", "Body", "StatusCallback")} == {
        "To": "+14155550123",
        "From": "+15005550006",
        "Body": "Code 123456",
        "StatusCallback": "https://notify.example/cb",
    }


async def test_an_api_key_and_a_messaging_service_work_too(
    twilio: tuple[TwilioStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = twilio
    messaging_service = "MG" + "3" * 32
    twilio_provider = provider(
        url,
        session,
        username=API_KEY_SID,
        password=API_KEY_SECRET,
        from_number=None,
        messaging_service_sid=messaging_service,
    )
    await twilio_provider.send(sms())
    [sent] = standin.messages
    assert sent["MessagingServiceSid"] == messaging_service and "From" not in sent


@pytest.mark.parametrize(("to", "code"), [(INVALID_NUMBER, 21211), (NOT_MOBILE, 21614)])
async def test_a_recipient_that_cannot_receive_is_permanent_with_twilios_code(
    twilio: tuple[TwilioStandIn, str, aiohttp.ClientSession], to: str, code: int
) -> None:
    standin, url, session = twilio
    with pytest.raises(PermanentProviderError, match=f"HTTP 400, Twilio error {code}") as failed:
        await provider(url, session).send(sms(to))
    assert failed.value.status == 400 and standin.messages == []


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_transient(
    twilio: tuple[TwilioStandIn, str, aiohttp.ClientSession], status: int
) -> None:
    standin, url, session = twilio
    standin.fail_next = [status]
    with pytest.raises(TransientProviderError, match=f"HTTP {status}"):
        await provider(url, session).send(sms())
    await provider(url, session).send(sms())  # and the next call goes through
    assert len(standin.messages) == 1


async def test_refused_credentials_are_transient_and_nothing_listening_too(
    twilio: tuple[TwilioStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = twilio
    with pytest.raises(TransientProviderError, match="Twilio error 20003"):
        await provider(url, session, password="wrong").send(sms())
    with pytest.raises(TransientProviderError, match="connection failed"):
        await provider("http://127.0.0.1:9", session).send(sms())
    assert standin.messages == []


def test_a_sender_must_be_given_once() -> None:
    with pytest.raises(ValueError, match="either from_number or messaging_service_sid"):
        TwilioConfig(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN)
