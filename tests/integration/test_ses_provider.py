"""The SES provider against a stand-in speaking SES v2 SendEmail over a real socket, which checks the
request's AWS Signature Version 4 itself: the email sent, and how each documented answer is classified."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from notify.adapters.provider.ses import SesConfig, SesProvider
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage
from tests.standins.ses import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, VERIFIED_SENDER, SesStandIn


@pytest.fixture
async def ses() -> AsyncIterator[tuple[SesStandIn, str, aiohttp.ClientSession]]:
    standin = SesStandIn()
    async with TestServer(standin.app(), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        yield standin, str(server.make_url("")).rstrip("/"), session


def provider(url: str, session: aiohttp.ClientSession, **overrides: Any) -> SesProvider:
    config: dict[str, Any] = {
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "sender": VERIFIED_SENDER,
        "endpoint_url": url,
        "configuration_set": "notify-events",
    }
    return SesProvider("ses", SesConfig(**(config | overrides)), session)


def email(to: str = "ada@example.com", content: str = "Hello Ada") -> ProviderMessage:
    return ProviderMessage(uuid.uuid4(), 1, "email", to, content, subject="Welcome")


async def test_an_email_is_sent_signed_and_its_message_id_kept(
    ses: tuple[SesStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = ses
    sent = email()
    receipt = await provider(url, session).send(sent)
    [received] = standin.emails
    assert receipt.message_id == received["MessageId"]
    assert received["FromEmailAddress"] == VERIFIED_SENDER
    assert received["Destination"] == {"ToAddresses": ["ada@example.com"]}
    assert received["Content"]["Simple"] == {
        "Subject": {"Data": "Welcome", "Charset": "UTF-8"},
        "Body": {"Text": {"Data": "Hello Ada", "Charset": "UTF-8"}},
    }
    assert received["EmailTags"] == [{"Name": "notification_id", "Value": str(sent.notification_id)}]
    assert received["ConfigurationSetName"] == "notify-events"


async def test_html_content_goes_with_a_text_rendering(
    ses: tuple[SesStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = ses
    await provider(url, session).send(email(content="<html><body><p>Hi &amp; welcome</p></body></html>"))
    body = standin.emails[0]["Content"]["Simple"]["Body"]
    assert body["Text"]["Data"] == "Hi & welcome" and body["Html"]["Data"].startswith("<html>")


async def test_a_rejected_or_malformed_email_is_permanent(
    ses: tuple[SesStandIn, str, aiohttp.ClientSession],
) -> None:
    _, url, session = ses
    with pytest.raises(
        PermanentProviderError, match="HTTP 400 MessageRejected: Email address is not verified"
    ):
        await provider(url, session, sender="someone@else.example").send(email())
    with pytest.raises(PermanentProviderError, match="HTTP 400 BadRequestException"):
        await provider(url, session).send(email(to="not-an-address"))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "TooManyRequestsException"),
        (503, "ServiceUnavailable"),
        (400, "AccountSuspendedException"),
        (400, "SendingPausedException"),
    ],
)
async def test_throttling_outages_and_account_problems_are_transient(
    ses: tuple[SesStandIn, str, aiohttp.ClientSession], status: int, error_type: str
) -> None:
    standin, url, session = ses
    standin.fail_next = [(status, error_type)]
    with pytest.raises(TransientProviderError, match=f"HTTP {status} {error_type}"):
        await provider(url, session).send(email())
    await provider(url, session).send(email())
    assert len(standin.emails) == 1


async def test_a_wrong_secret_is_refused_by_the_signature_check_and_transient(
    ses: tuple[SesStandIn, str, aiohttp.ClientSession],
) -> None:
    standin, url, session = ses
    with pytest.raises(TransientProviderError, match="HTTP 403 SignatureDoesNotMatch"):
        await provider(url, session, secret_access_key="wrong").send(email())
    assert standin.emails == []
