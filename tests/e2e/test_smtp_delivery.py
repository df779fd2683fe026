"""Email through the real worker: to a real SMTP server (STARTTLS, AUTH), delivered after failing over from a
relay that is down, a 5xx reply dead-lettered, a 4xx reply retried until the retries run out; and through an
SES stand-in (checking the AWS signature), failing over to SMTP while SES answers 503."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestServer

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.smtp_server import PASSWORD, USER, SmtpServer
from tests.standins.ses import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, VERIFIED_SENDER, SesStandIn
from tests.support import eventually


async def post_email(stack: Stack, recipient: str) -> str:
    status, body = await stack.post(
        {"channel": "email", "recipient": recipient, "subject": "Hi", "content": "Hello from notify"}
    )
    assert status == 201, body
    return str(body["id"])


async def attempts(stack: Stack, notification_id: str) -> list[dict[str, Any]]:
    url = f"{stack.api_url}/api/v1/notifications/{notification_id}/attempts"
    async with stack.http.get(url) as r:
        assert r.status == 200
        return list((await r.json())["data"])


async def test_email_over_smtp_fails_over_retries_and_dead_letters(
    stack: Stack, smtp_server: SmtpServer
) -> None:
    down = {"type": "smtp", "name": "down", "host": "127.0.0.1", "port": free_port(), "tls": "none"}
    relay = {
        "type": "smtp",
        "name": "relay",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "username": USER,
        "password": PASSWORD,
        "ca_file": smtp_server.ca_file,
    }
    providers = {
        "email": [{**down, "sender": "notify@example.com"}, {**relay, "sender": "notify@example.com"}]
    }
    await stack.start_api(max_retries_normal="1")  # a notification's retries are fixed when it is accepted
    await stack.start_worker(providers=json.dumps(providers), retry_base_s="0.2")

    delivered = await post_email(stack, "ada@example.com")
    refused = await post_email(stack, "nobody@example.com")
    busy = await post_email(stack, "busy@example.com")

    async def finished() -> dict[str, dict[str, Any]] | None:
        found = {n: await stack.get(n) for n in (delivered, refused, busy)}
        return found if all(f["status"] in ("delivered", "failed") for f in found.values()) else None

    final = await eventually(finished, timeout_s=60, what="the three emails finished")
    assert final[delivered]["status"] == "delivered" and final[delivered]["provider"] == "relay"
    assert final[delivered]["provider_message_id"] == f"{delivered}@example.com"
    ledger = await attempts(stack, delivered)
    assert [(a["provider"], a["outcome"]) for a in ledger] == [("down", "transient"), ("relay", "delivered")]

    assert final[refused]["status"] == "failed"
    assert "SMTP 550" in final[refused]["error_message"]
    assert [a["outcome"] for a in await attempts(stack, refused)][-1] == "permanent"

    assert final[busy]["status"] == "failed"  # 451 each time, until the one retry was used up
    assert "SMTP 451" in final[busy]["error_message"]
    busy_ledger = await attempts(stack, busy)
    assert {a["attempt"] for a in busy_ledger} == {1, 2}
    assert all(a["outcome"] == "transient" for a in busy_ledger)

    [(received, _)] = smtp_server.mailbox.messages  # exactly one email arrived: the delivered one
    assert received["Message-ID"] == f"<{delivered}@example.com>"
    assert received["To"] == "ada@example.com"


async def test_email_through_ses_fails_over_to_smtp_while_ses_answers_503(
    stack: Stack, smtp_server: SmtpServer
) -> None:
    ses_standin = SesStandIn(fail_next=[(503, "ServiceUnavailable")])
    async with TestServer(ses_standin.app(), host="127.0.0.1") as server:
        ses = {
            "type": "ses",
            "name": "ses",
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "sender": VERIFIED_SENDER,
            "endpoint_url": str(server.make_url("")).rstrip("/"),
        }
        relay = {
            "type": "smtp",
            "name": "relay",
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "username": USER,
            "password": PASSWORD,
            "ca_file": smtp_server.ca_file,
            "sender": VERIFIED_SENDER,
        }
        await stack.start_api()
        await stack.start_worker(providers=json.dumps({"email": [ses, relay]}))
        during_outage = await post_email(stack, "ada@example.com")

        async def delivered(notification_id: str) -> dict[str, Any] | None:
            n = await stack.get(notification_id)
            return n if n["status"] == "delivered" else None

        first = await eventually(lambda: delivered(during_outage), what="delivered during the SES outage")
        assert first["provider"] == "relay"
        ledger = [
            (a["provider"], a["outcome"], a["http_status"]) for a in await attempts(stack, during_outage)
        ]
        assert ledger == [("ses", "transient", 503), ("relay", "delivered", None)]

        after = await post_email(stack, "grace@example.com")  # SES answers again
        second = await eventually(lambda: delivered(after), what="delivered through SES")
        [sent] = ses_standin.emails
        assert (second["provider"], second["provider_message_id"]) == ("ses", sent["MessageId"])
        assert sent["Destination"] == {"ToAddresses": ["grace@example.com"]}
        assert sent["EmailTags"] == [{"Name": "notification_id", "Value": after}]
        assert [m["To"] for m, _ in smtp_server.mailbox.messages] == ["ada@example.com"]
