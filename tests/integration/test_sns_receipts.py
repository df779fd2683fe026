"""SNS messages (SES events) checked as AWS documents it, against a stand-in that signs them and serves its
certificate over a real socket; and SES events read as receipts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from notify.adapters.provider.sns import SnsVerifier, ses_receipt
from notify.domain.receipts import ReceiptStatus
from notify.settings import SesProviderSettings
from tests.standins.sns import TEST_URL_PATTERN, SnsStandIn

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def sns() -> AsyncIterator[tuple[SnsStandIn, SnsVerifier]]:
    standin = SnsStandIn()
    async with TestServer(standin.app(), host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        standin.base_url = str(server.make_url("")).rstrip("/")
        yield standin, SnsVerifier(session, url_pattern=TEST_URL_PATTERN)


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_message_verifies_and_any_change_does_not(
    sns: tuple[SnsStandIn, SnsVerifier], version: str
) -> None:
    standin, verifier = sns
    event = standin.ses_event("Delivery", "0100-abc")
    message = standin.sign(
        {k: v for k, v in event.items() if k not in ("Signature", "SignatureVersion")}, version
    )
    assert await verifier.verify(message)
    assert not await verifier.verify({**message, "Message": message["Message"].replace("Delivery", "Bounce")})
    assert not await verifier.verify({**message, "TopicArn": "arn:aws:sns:eu-west-1:1:other"})
    assert not await verifier.verify({**message, "Signature": "not base64!"})
    assert not await verifier.verify({**message, "SignatureVersion": "3"})
    assert await verifier.verify(standin.subscription_confirmation())


async def test_a_message_signed_by_another_key_or_pointing_at_another_certificate_is_refused(
    sns: tuple[SnsStandIn, SnsVerifier],
) -> None:
    standin, verifier = sns
    impostor = rsa.generate_private_key(65537, 2048)
    event = standin.ses_event("Delivery", "0100-abc")
    unsigned = {k: v for k, v in event.items() if k not in ("Signature", "SignatureVersion")}
    assert not await verifier.verify(standin.sign(unsigned, key=impostor))  # same cert URL, wrong key
    elsewhere = {**event, "SigningCertURL": "https://attacker.example/cert.pem"}
    assert not await verifier.verify(elsewhere)  # a certificate from anywhere but the allowed hosts


async def test_aws_hosts_are_the_default_pattern() -> None:
    pattern = SesProviderSettings.model_fields["sns_url_pattern"].default
    async with aiohttp.ClientSession() as session:
        verifier = SnsVerifier(session, url_pattern=pattern)
    assert verifier.trusted_url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem")
    assert verifier.trusted_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem")
    for untrusted in (
        "http://sns.eu-west-1.amazonaws.com/x.pem",  # not https
        "https://sns.eu-west-1.amazonaws.com.attacker.example/x.pem",
        "https://attacker.example/sns.eu-west-1.amazonaws.com/x.pem",
        None,
    ):
        assert not verifier.trusted_url(untrusted), untrusted


@pytest.mark.parametrize(
    ("event", "status", "error"),
    [
        ({"eventType": "Delivery"}, ReceiptStatus.DELIVERED, None),
        (
            {"eventType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "NoEmail"}},
            ReceiptStatus.BOUNCED,
            "Permanent/NoEmail",
        ),
        (
            {"eventType": "Complaint", "complaint": {"complaintFeedbackType": "abuse"}},
            ReceiptStatus.COMPLAINED,
            "abuse",
        ),
        ({"eventType": "Reject"}, ReceiptStatus.UNDELIVERED, None),
        ({"eventType": "DeliveryDelay"}, ReceiptStatus.IN_TRANSIT, None),
        (
            {"notificationType": "Bounce", "bounce": {"bounceType": "Transient"}},
            ReceiptStatus.BOUNCED,
            "Transient",
        ),
    ],
)
def test_ses_events_are_receipts(event: dict[str, object], status: ReceiptStatus, error: str | None) -> None:
    receipt = ses_receipt("ses", json.dumps(event | {"mail": {"messageId": "0100-abc"}}), AT)
    assert receipt is not None
    assert (receipt.provider_message_id, receipt.status, receipt.error_code) == ("0100-abc", status, error)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"eventType": "Open", "mail": {"messageId": "m"}}),
        "not json",
        json.dumps({"eventType": "Delivery"}),
    ],
)
def test_other_events_are_no_receipt(text: str) -> None:
    assert ses_receipt("ses", text, AT) is None
