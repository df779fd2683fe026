"""SMS through the real worker to a stand-in speaking Twilio's Messages API: delivered with Twilio's message
SID after failing over from an account whose credentials are refused, an invalid number dead-lettered with
Twilio's error code, a 503 retried."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from tests.conftest import Stack
from tests.e2e.test_smtp_delivery import attempts
from tests.standins.twilio import ACCOUNT_SID, AUTH_TOKEN, INVALID_NUMBER, TwilioStandIn
from tests.support import eventually


async def test_sms_through_twilio_fails_over_retries_and_dead_letters(
    stack: Stack, twilio: tuple[TwilioStandIn, str]
) -> None:
    standin, base_url = twilio
    entry = {
        "type": "twilio",
        "account_sid": ACCOUNT_SID,
        "from_number": "+15005550006",
        "base_url": base_url,
    }
    providers = {
        "sms": [
            entry | {"name": "refused", "auth_token": "not-the-token"},
            entry | {"name": "twilio", "auth_token": AUTH_TOKEN},
        ]
    }
    await stack.start_api()
    await stack.start_worker(providers=json.dumps(providers), retry_base_s="0.2", breaker_fail_max="10")

    delivered = (await stack.send_sms("Your code is 123456"))["id"]
    invalid = (await stack.send_sms("Your code is 654321", recipient=INVALID_NUMBER))["id"]

    async def finished() -> dict[str, dict[str, Any]] | None:
        found = {n: await stack.get(n) for n in (delivered, invalid)}
        return found if all(f["status"] in ("delivered", "failed") for f in found.values()) else None

    final = await eventually(finished, timeout_s=60, what="both messages finished")
    [sent] = standin.messages
    assert final[delivered]["status"] == "delivered" and final[delivered]["provider"] == "twilio"
    assert final[delivered]["provider_message_id"] == sent["sid"]
    assert (sent["To"], sent["Body"]) == ("+14155550123", "Your code is 123456")
    ledger = [(a["provider"], a["outcome"]) for a in await attempts(stack, delivered)]
    assert ledger == [("refused", "transient"), ("twilio", "delivered")]

    assert final[invalid]["status"] == "failed"
    assert "Twilio error 21211" in final[invalid]["error_message"]

    # A 503 from Twilio is retried (after failing over to nothing: the refused account is refused again).
    standin.fail_next = [503]
    retried = (await stack.send_sms("third"))["id"]

    async def delivered_after_a_retry() -> dict[str, Any] | None:
        n = await stack.get(retried)
        return n if n["status"] == "delivered" else None

    assert (await eventually(delivered_after_a_retry, timeout_s=60, what="the retried message"))[
        "attempts"
    ] == 2
    outcomes = [(a["attempt"], a["provider"], a["outcome"]) for a in await attempts(stack, retried)]
    assert outcomes == [
        (1, "refused", "transient"),
        (1, "twilio", "transient"),
        (2, "refused", "transient"),
        (2, "twilio", "delivered"),
    ]


CALLBACK_URL = "https://notify.example.com/callbacks/twilio/twilio"  # what Twilio is told, and signs


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """As Twilio signs: with its own library, an implementation independent of notify's."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


async def test_a_signed_status_callback_records_a_receipt_and_a_forged_one_is_refused(
    stack: Stack, twilio: tuple[TwilioStandIn, str]
) -> None:
    standin, base_url = twilio
    twilio_entry = {
        "type": "twilio",
        "name": "twilio",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": base_url,
        "status_callback_url": CALLBACK_URL,
    }
    providers = json.dumps({"sms": [twilio_entry]})
    await stack.start_api(providers=providers)
    await stack.start_worker(providers=providers)
    sent = (await stack.send_sms("Your code is 123456"))["id"]

    async def delivered() -> bool:
        return (await stack.get(sent))["status"] == "delivered"

    await eventually(delivered, what="delivered")
    [message] = standin.messages
    assert message["StatusCallback"] == CALLBACK_URL
    endpoint = f"{stack.api_url}/callbacks/twilio/twilio"

    async def callback(params: dict[str, str], signature: str | None = None) -> tuple[int, Any]:
        headers = {"X-Twilio-Signature": signature or twilio_signature(AUTH_TOKEN, CALLBACK_URL, params)}
        # A session without the API key: Twilio has none.
        async with (
            aiohttp.ClientSession() as twilio_client,
            twilio_client.post(endpoint, data=params, headers=headers) as r,
        ):
            return r.status, (await r.json() if r.status != 204 else None)

    async def receipts() -> list[dict[str, Any]]:
        async with stack.http.get(f"{stack.api_url}/api/v1/notifications/{sent}/receipts") as r:
            assert r.status == 200
            return list((await r.json())["data"])

    report = {"MessageSid": message["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    forged = twilio_signature("not-the-token", CALLBACK_URL, report)
    assert (await callback(report, forged))[0] == 403
    signed = twilio_signature(AUTH_TOKEN, CALLBACK_URL, report)
    tampered = {**report, "MessageStatus": "delivered"}  # the signature covers every parameter
    assert (await callback(tampered, signed))[0] == 403
    assert await receipts() == []

    assert (await callback({"MessageSid": message["sid"], "MessageStatus": "sent"}))[0] == 204
    assert (await callback(report))[0] == 204
    status, error = await callback({"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"})
    assert (status, error["code"]) == (404, "not_found")  # no notification was sent as that message
    status, error = await callback({"MessageSid": message["sid"]})
    assert (status, error["details"][0]["field"]) == (400, "MessageStatus")
    nobody = f"{stack.api_url}/callbacks/twilio/nobody"
    async with aiohttp.ClientSession() as anyone, anyone.post(nobody, data=report) as r:
        assert r.status == 404

    assert [(r["status"], r["provider_status"], r["error_code"]) for r in await receipts()] == [
        ("in_transit", "sent", None),
        ("undelivered", "undelivered", "30003"),
    ]
    assert (await stack.get(sent))["status"] == "delivered"  # the receipt does not change the status
