"""The APNs provider against a stand-in speaking APNs over HTTP/2 and TLS on loopback: the provider token,
the request, and how each documented answer is classified."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from notify.adapters.provider.apns import ApnsConfig, ApnsProvider
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage
from tests.standins.apns import KEY_ID, TEAM_ID, TOPIC, ApnsStandIn, serving

DEVICE = "a" * 64


@pytest.fixture
async def apns(tmp_path: Path) -> AsyncIterator[tuple[ApnsStandIn, ApnsProvider]]:
    standin = ApnsStandIn()
    async with serving(standin, tmp_path) as (url, ca_file):
        config = ApnsConfig(TEAM_ID, KEY_ID, standin.private_key_pem(), TOPIC, base_url=url, ca_file=ca_file)
        provider = ApnsProvider("apns", config)
        try:
            yield standin, provider
        finally:
            await provider.aclose()


def push(device: str = DEVICE, subject: str | None = "Order shipped") -> ProviderMessage:
    return ProviderMessage(uuid.uuid4(), 1, "push", device, "Your order is on its way", subject=subject)


async def test_a_push_goes_over_http2_with_the_notification_id_as_apns_id(
    apns: tuple[ApnsStandIn, ApnsProvider],
) -> None:
    standin, provider = apns
    sent = push()
    receipt = await provider.send(sent)
    assert receipt.message_id == str(sent.notification_id)
    [received] = standin.pushes
    assert standin.http_versions == {"2"}
    assert received["device"] == DEVICE
    assert received["headers"]["apns-id"] == str(sent.notification_id)
    assert (received["headers"]["apns-topic"], received["headers"]["apns-push-type"]) == (TOPIC, "alert")
    assert received["payload"] == {
        "aps": {"alert": {"title": "Order shipped", "body": "Your order is on its way"}},
        "notification_id": str(sent.notification_id),
    }


async def test_many_pushes_share_one_connection_and_one_token(apns: tuple[ApnsStandIn, ApnsProvider]) -> None:
    standin, provider = apns
    await asyncio.gather(*(provider.send(push()) for _ in range(20)))
    tokens = {p["headers"]["authorization"] for p in standin.pushes}
    assert len(standin.pushes) == 20 and len(tokens) == 1


async def test_an_unregistered_device_is_permanent_counted_and_said(
    apns: tuple[ApnsStandIn, ApnsProvider],
) -> None:
    _, provider = apns
    before = REGISTRY.get_sample_value("notify_push_tokens_unregistered_total", {"provider": "apns"}) or 0.0
    with pytest.raises(PermanentProviderError, match=r"HTTP 410 Unregistered.*drop the token"):
        await provider.send(push("gone" + "0" * 60))
    assert (
        REGISTRY.get_sample_value("notify_push_tokens_unregistered_total", {"provider": "apns"}) == before + 1
    )
    with pytest.raises(PermanentProviderError, match="HTTP 400 BadDeviceToken"):
        await provider.send(push("bad" + "0" * 61))


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")],
)
async def test_throttling_and_server_errors_are_transient(
    apns: tuple[ApnsStandIn, ApnsProvider], status: int, reason: str
) -> None:
    standin, provider = apns
    standin.fail_next = [(status, reason)]
    with pytest.raises(TransientProviderError, match=f"HTTP {status} {reason}"):
        await provider.send(push())
    await provider.send(push())
    assert len(standin.pushes) == 1


async def test_an_expired_provider_token_is_transient_and_renewed(
    apns: tuple[ApnsStandIn, ApnsProvider],
) -> None:
    standin, provider = apns
    await provider.send(push())
    standin.revoked, standin.revoked_at = True, 2**31  # every token made so far is expired
    with pytest.raises(TransientProviderError, match="HTTP 403 ExpiredProviderToken"):
        await provider.send(push())
    standin.revoked = False
    await provider.send(push())
    first, renewed = (p["headers"]["authorization"] for p in standin.pushes)
    assert first != renewed  # a new token was made after the 403


async def test_an_untrusted_server_or_none_is_transient(tmp_path: Path) -> None:
    standin = ApnsStandIn()
    async with serving(standin, tmp_path) as (url, _):
        untrusted = ApnsProvider(
            "apns", ApnsConfig(TEAM_ID, KEY_ID, standin.private_key_pem(), TOPIC, base_url=url)
        )
        with pytest.raises(TransientProviderError, match="connection failed"):
            await untrusted.send(push())
        await untrusted.aclose()
    assert standin.pushes == []
