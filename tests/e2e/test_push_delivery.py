"""Push through the real worker to stand-ins for FCM HTTP v1 (with its OAuth2 token endpoint) and APNs (HTTP/2
over TLS): delivered after failing over or after a retry, an unregistered token dead-lettered and said so."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.e2e.test_smtp_delivery import attempts
from tests.standins.apns import KEY_ID, TEAM_ID, TOPIC, ApnsStandIn, serving
from tests.standins.fcm import FcmStandIn
from tests.support import eventually


@pytest.fixture
async def two_fcms() -> AsyncIterator[tuple[FcmStandIn, FcmStandIn]]:
    down, up = FcmStandIn(fail_next=[503] * 1000), FcmStandIn()
    async with TestServer(down.app(), host="127.0.0.1") as a, TestServer(up.app(), host="127.0.0.1") as b:
        down.base_url, up.base_url = str(a.make_url("")).rstrip("/"), str(b.make_url("")).rstrip("/")
        yield down, up


async def test_push_through_fcm_fails_over_and_dead_letters_an_unregistered_token(
    stack: Stack, two_fcms: tuple[FcmStandIn, FcmStandIn]
) -> None:
    down, up = two_fcms
    providers = {
        "push": [
            {
                "type": "fcm",
                "name": name,
                "service_account": fcm.service_account_json(),
                "base_url": fcm.base_url,
            }
            for name, fcm in (("fcm-down", down), ("fcm", up))
        ]
    }
    await stack.start_api()
    await stack.start_worker(providers=json.dumps(providers), breaker_fail_max="100")

    async def post_push(token: str) -> str:
        status, body = await stack.post({"channel": "push", "recipient": token, "content": "Shipped"})
        assert status == 201, body
        return str(body["id"])

    delivered, gone = await post_push("device-token-1"), await post_push("unregistered-device")

    async def finished() -> dict[str, dict[str, Any]] | None:
        found = {n: await stack.get(n) for n in (delivered, gone)}
        return found if all(f["status"] in ("delivered", "failed") for f in found.values()) else None

    final = await eventually(finished, timeout_s=60, what="both pushes finished")
    assert final[delivered]["status"] == "delivered" and final[delivered]["provider"] == "fcm"
    assert final[delivered]["provider_message_id"].startswith("projects/notify-test/messages/")
    [message] = up.messages
    assert message["token"] == "device-token-1"
    assert message["notification"] == {"body": "Shipped"}
    assert message["data"] == {"notification_id": delivered}
    ledger = [(a["provider"], a["outcome"], a["http_status"]) for a in await attempts(stack, delivered)]
    assert ledger == [("fcm-down", "transient", 503), ("fcm", "delivered", None)]

    assert final[gone]["status"] == "failed"
    assert "UNREGISTERED" in final[gone]["error_message"] and "drop the token" in final[gone]["error_message"]
    assert up.token_requests == 1  # one access token for every send


async def test_push_through_apns_is_delivered_retried_and_dead_letters_an_unregistered_device(
    stack: Stack, tmp_path: Path
) -> None:
    standin = ApnsStandIn(fail_next=[(503, "ServiceUnavailable")])
    async with serving(standin, tmp_path) as (url, ca_file):
        apns = {
            "type": "apns",
            "name": "apns",
            "team_id": TEAM_ID,
            "key_id": KEY_ID,
            "private_key": standin.private_key_pem(),
            "topic": TOPIC,
            "base_url": url,
            "ca_file": ca_file,
        }
        await stack.start_api()
        await stack.start_worker(providers=json.dumps({"push": [apns]}), retry_base_s="0.2")
        device, gone = "a" * 64, "gone" + "0" * 60

        async def post_push(token: str) -> str:
            status, body = await stack.post({"channel": "push", "recipient": token, "content": "Shipped"})
            assert status == 201, body
            return str(body["id"])

        delivered = await post_push(device)  # the first call meets the 503, the retry goes through

        async def done(notification_id: str) -> dict[str, Any] | None:
            n = await stack.get(notification_id)
            return n if n["status"] in ("delivered", "failed") else None

        first = await eventually(lambda: done(delivered), timeout_s=60, what="the push delivered")
        assert (first["status"], first["attempts"], first["provider_message_id"]) == (
            "delivered",
            2,
            delivered,
        )
        outcomes = [(a["attempt"], a["outcome"], a["http_status"]) for a in await attempts(stack, delivered)]
        assert outcomes == [(1, "transient", 503), (2, "delivered", None)]
        [pushed] = standin.pushes
        assert (pushed["device"], pushed["headers"]["apns-id"]) == (device, delivered)

        refused = await post_push(gone)
        final = await eventually(lambda: done(refused), timeout_s=60, what="the unregistered push failed")
        assert final["status"] == "failed" and "410 Unregistered" in final["error_message"]
        assert standin.http_versions == {"2"}


async def test_push_through_fcm_alone_is_retried(stack: Stack) -> None:
    fcm = FcmStandIn(fail_next=[429])
    async with TestServer(fcm.app(), host="127.0.0.1") as server:
        fcm.base_url = str(server.make_url("")).rstrip("/")
        entry = {
            "type": "fcm",
            "name": "fcm",
            "service_account": fcm.service_account_json(),
            "base_url": fcm.base_url,
        }
        await stack.start_api()
        await stack.start_worker(providers=json.dumps({"push": [entry]}), retry_base_s="0.2")
        status, body = await stack.post({"channel": "push", "recipient": "device-token-9", "content": "Hi"})
        assert status == 201, body

        async def delivered() -> dict[str, Any] | None:
            n = await stack.get(body["id"])
            return n if n["status"] == "delivered" else None

        final = await eventually(delivered, timeout_s=60, what="the push delivered after a retry")
        assert final["attempts"] == 2
        outcomes = [(a["attempt"], a["outcome"], a["http_status"]) for a in await attempts(stack, body["id"])]
        assert outcomes == [(1, "transient", 429), (2, "delivered", None)]


async def test_push_fails_over_from_an_apns_that_does_not_answer(stack: Stack, tmp_path: Path) -> None:
    standin = ApnsStandIn()
    async with serving(standin, tmp_path) as (url, ca_file):
        common = {
            "type": "apns",
            "team_id": TEAM_ID,
            "key_id": KEY_ID,
            "private_key": standin.private_key_pem(),
            "topic": TOPIC,
            "ca_file": ca_file,
            "timeout_s": 2,
        }
        nobody = f"https://127.0.0.1:{free_port()}"
        providers = {
            "push": [
                common | {"name": "apns-a", "base_url": nobody},
                common | {"name": "apns-b", "base_url": url},
            ]
        }
        await stack.start_api()
        await stack.start_worker(providers=json.dumps(providers))
        status, body = await stack.post({"channel": "push", "recipient": "c" * 64, "content": "Hi"})
        assert status == 201, body

        async def delivered() -> dict[str, Any] | None:
            n = await stack.get(body["id"])
            return n if n["status"] == "delivered" else None

        final = await eventually(delivered, timeout_s=60, what="the push delivered by the second APNs")
        assert final["provider"] == "apns-b"
        ledger = [(a["provider"], a["outcome"]) for a in await attempts(stack, body["id"])]
        assert ledger == [("apns-a", "transient"), ("apns-b", "delivered")]
