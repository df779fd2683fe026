"""Email through the real worker: to a real SMTP server (STARTTLS, AUTH), delivered after failing over from a
relay that is down, a 5xx reply dead-lettered, a 4xx reply retried until the retries run out; and through an
SES stand-in (checking the AWS signature), failing over to SMTP while SES answers 503, its events coming back
through SNS as receipts."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.smtp_server import PASSWORD, USER, SmtpServer
from tests.standins.ses import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, VERIFIED_SENDER, SesStandIn
from tests.standins.sns import TEST_URL_PATTERN, TOPIC_ARN, SnsStandIn
from tests.support import eventually


async def post_email(stack: Stack, recipient: str) -> str:
    status, body = await stack.post(
        {"channel": "email", "recipient": recipient, "subject": "Hi", "content": "Hello from notify"}
    )
    assert status == 201, body
    return str(body["id"])


def ses_entry(server: TestServer) -> dict[str, Any]:
    """The NOTIFY_PROVIDERS entry of the SES stand-in served by ``server``."""
    return {
        "type": "ses",
        "name": "ses",
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "sender": VERIFIED_SENDER,
        "endpoint_url": str(server.make_url("")).rstrip("/"),
    }


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
        ses = ses_entry(server)
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


async def test_email_through_ses_alone_is_retried_and_a_rejected_one_dead_lettered(stack: Stack) -> None:
    ses_standin = SesStandIn(fail_next=[(503, "ServiceUnavailable")], rejected={"suppressed@example.com"})
    async with TestServer(ses_standin.app(), host="127.0.0.1") as server:
        ses = ses_entry(server)
        await stack.start_api()
        await stack.start_worker(providers=json.dumps({"email": [ses]}), retry_base_s="0.2")
        retried = await post_email(stack, "ada@example.com")  # meets the 503, then goes through

        async def finished(notification_id: str) -> dict[str, Any] | None:
            n = await stack.get(notification_id)
            return n if n["status"] in ("delivered", "failed") else None

        first = await eventually(lambda: finished(retried), timeout_s=60, what="the retried email")
        assert (first["status"], first["attempts"]) == ("delivered", 2)
        outcomes = [(a["attempt"], a["outcome"], a["http_status"]) for a in await attempts(stack, retried)]
        assert outcomes == [(1, "transient", 503), (2, "delivered", None)]

        refused = await post_email(stack, "suppressed@example.com")
        final = await eventually(lambda: finished(refused), timeout_s=60, what="the rejected email")
        assert final["status"] == "failed" and "HTTP 400 MessageRejected" in final["error_message"]
        assert final["attempts"] == 1  # permanent: not retried
        assert [e["Destination"]["ToAddresses"] for e in ses_standin.emails] == [["ada@example.com"]]


async def test_ses_events_through_sns_are_receipts_and_a_forged_one_is_refused(stack: Stack) -> None:
    ses_standin, sns = SesStandIn(), SnsStandIn()
    async with (
        TestServer(ses_standin.app(), host="127.0.0.1") as ses_server,
        TestServer(sns.app(), host="127.0.0.1") as sns_server,
    ):
        sns.base_url = str(sns_server.make_url("")).rstrip("/")
        ses = ses_entry(ses_server) | {"sns_topic_arn": TOPIC_ARN, "sns_url_pattern": TEST_URL_PATTERN}
        providers = json.dumps({"email": [ses]})
        await stack.start_api(providers=providers)
        await stack.start_worker(providers=providers)
        endpoint = f"{stack.api_url}/callbacks/ses/ses"

        async def post_sns(message: dict[str, Any]) -> int:
            # SNS posts JSON as text/plain, without an API key.
            async with (
                aiohttp.ClientSession() as aws,
                aws.post(
                    endpoint, data=json.dumps(message), headers={"Content-Type": "text/plain; charset=UTF-8"}
                ) as r,
            ):
                return r.status

        confirmation = sns.subscription_confirmation()
        assert await post_sns(confirmation) == 204
        assert sns.confirmed == [confirmation["Token"]]

        sent = await post_email(stack, "ada@example.com")

        async def delivered() -> dict[str, Any] | None:
            n = await stack.get(sent)
            return n if n["status"] == "delivered" else None

        message_id = (await eventually(delivered, what="delivered through SES"))["provider_message_id"]

        forged = sns.sign(
            {k: v for k, v in sns.ses_event("Complaint", message_id).items() if k != "Signature"},
            key=rsa.generate_private_key(65537, 2048),
        )
        assert await post_sns(forged) == 403
        other_topic = sns.sign({**sns.ses_event("Delivery", message_id), "TopicArn": TOPIC_ARN + "-other"})
        assert await post_sns(other_topic) == 403
        assert await post_sns(sns.ses_event("Delivery", message_id)) == 204
        bounce = {"bounceType": "Transient", "bounceSubType": "MailboxFull"}
        assert await post_sns(sns.ses_event("Bounce", message_id, bounce=bounce)) == 204
        assert await post_sns(sns.ses_event("Delivery", "0100-not-ours")) == 204  # acknowledged, dropped

        async with stack.http.get(f"{stack.api_url}/api/v1/notifications/{sent}/receipts") as r:
            receipts = (await r.json())["data"]
        assert [(x["status"], x["provider_status"], x["error_code"]) for x in receipts] == [
            ("delivered", "Delivery", None),
            ("bounced", "Bounce", "Transient/MailboxFull"),
        ]
