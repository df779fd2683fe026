"""The FCM provider against a stand-in for Google's token endpoint and FCM's HTTP v1 API over a real socket:
the OAuth2 token (signed with the service account's key, cached, refreshed), the request, and how each
documented answer is classified."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from notify.adapters.provider.fcm import FcmProvider, ServiceAccount
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage
from tests.standins.fcm import PROJECT, FcmStandIn


@pytest.fixture
async def fcm() -> AsyncIterator[tuple[FcmStandIn, FcmProvider]]:
    standin = FcmStandIn()
    async with TestServer(standin.app(), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        standin.base_url = str(server.make_url("")).rstrip("/")
        account = ServiceAccount.from_json(standin.service_account_json())
        yield standin, FcmProvider("fcm", account, session, base_url=standin.base_url, timeout_s=5)


def push(token: str = "device-token-1", subject: str | None = "Order shipped") -> ProviderMessage:
    return ProviderMessage(uuid.uuid4(), 1, "push", token, "Your order is on its way", subject=subject)


def unregistered_count() -> float:
    return REGISTRY.get_sample_value("notify_push_tokens_unregistered_total", {"provider": "fcm"}) or 0.0


async def test_a_push_is_sent_with_one_cached_token(fcm: tuple[FcmStandIn, FcmProvider]) -> None:
    standin, provider = fcm
    sent = push()
    receipts = await asyncio.gather(
        provider.send(sent), provider.send(push()), provider.send(push(subject=None))
    )
    assert standin.token_requests == 1  # one token for all three, fetched once though they ran together
    assert all(r.message_id.startswith(f"projects/{PROJECT}/messages/") for r in receipts)
    first = next(m for m in standin.messages if m["data"]["notification_id"] == str(sent.notification_id))
    assert first == {
        "token": "device-token-1",
        "notification": {"title": "Order shipped", "body": "Your order is on its way"},
        "data": {"notification_id": str(sent.notification_id)},
    }
    assert any("title" not in m["notification"] for m in standin.messages)


async def test_an_unregistered_token_is_permanent_counted_and_said(
    fcm: tuple[FcmStandIn, FcmProvider],
) -> None:
    _, provider = fcm
    before = unregistered_count()
    with pytest.raises(PermanentProviderError, match=r"HTTP 404 UNREGISTERED.*drop the token"):
        await provider.send(push("unregistered-abc"))
    assert unregistered_count() == before + 1
    with pytest.raises(PermanentProviderError, match="HTTP 400 INVALID_ARGUMENT"):
        await provider.send(push("invalid-token"))
    assert unregistered_count() == before + 1  # an invalid token is not an unregistered one


@pytest.mark.parametrize(("status", "code"), [(429, "QUOTA_EXCEEDED"), (503, "UNAVAILABLE")])
async def test_quota_and_unavailable_are_transient(
    fcm: tuple[FcmStandIn, FcmProvider], status: int, code: str
) -> None:
    standin, provider = fcm
    standin.fail_next = [status]
    with pytest.raises(TransientProviderError, match=f"HTTP {status} {code}"):
        await provider.send(push())
    await provider.send(push())
    assert len(standin.messages) == 1


async def test_a_revoked_token_is_transient_and_the_next_send_fetches_a_new_one(
    fcm: tuple[FcmStandIn, FcmProvider],
) -> None:
    standin, provider = fcm
    await provider.send(push())
    standin.revoke_tokens()
    with pytest.raises(TransientProviderError, match="HTTP 401"):
        await provider.send(push())
    await provider.send(push())
    assert standin.token_requests == 2 and len(standin.messages) == 2


async def test_a_key_the_token_endpoint_refuses_is_transient() -> None:
    standin, impostor = FcmStandIn(), FcmStandIn()  # the impostor's key is not the one the endpoint knows
    async with TestServer(standin.app(), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        standin.base_url = impostor.base_url = str(server.make_url("")).rstrip("/")
        account = ServiceAccount.from_json(impostor.service_account_json())
        provider = FcmProvider("fcm", account, session, base_url=standin.base_url, timeout_s=5)
        with pytest.raises(TransientProviderError, match="token endpoint: HTTP 400: Signature verification"):
            await provider.send(push())
    assert standin.messages == []
