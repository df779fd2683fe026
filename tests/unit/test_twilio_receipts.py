"""Twilio's status callback read as a receipt, and its signature checked against Twilio's own library."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from notify.adapters.provider.twilio import twilio_receipt, valid_signature
from notify.domain.errors import ValidationFailed
from notify.domain.receipts import ReceiptStatus

URL = "https://notify.example.com/callbacks/twilio/twilio?region=eu"
AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [
        ("delivered", ReceiptStatus.DELIVERED),
        ("read", ReceiptStatus.DELIVERED),
        ("undelivered", ReceiptStatus.UNDELIVERED),
        ("failed", ReceiptStatus.UNDELIVERED),
        ("canceled", ReceiptStatus.UNDELIVERED),
        ("queued", ReceiptStatus.IN_TRANSIT),
        ("sent", ReceiptStatus.IN_TRANSIT),
        ("accepted", ReceiptStatus.IN_TRANSIT),
    ],
)
def test_each_message_status_is_a_receipt_status(twilio_status: str, status: ReceiptStatus) -> None:
    receipt = twilio_receipt("tw", {"MessageSid": "SM1", "MessageStatus": twilio_status, "ErrorCode": ""}, AT)
    assert (receipt.provider, receipt.provider_message_id, receipt.status) == ("tw", "SM1", status)
    assert (receipt.provider_status, receipt.error_code, receipt.received_at) == (twilio_status, None, AT)


def test_the_older_sms_names_and_an_error_code_are_read() -> None:
    receipt = twilio_receipt("tw", {"SmsSid": "SM2", "SmsStatus": "undelivered", "ErrorCode": "30003"}, AT)
    assert (receipt.provider_message_id, receipt.error_code) == ("SM2", "30003")


def test_a_callback_naming_no_message_or_status_is_a_400_naming_them() -> None:
    with pytest.raises(ValidationFailed) as refused:
        twilio_receipt("tw", {"AccountSid": "AC1"}, AT)
    assert [d.field for d in refused.value.details] == ["MessageSid", "MessageStatus"]


def test_the_signature_is_twilios() -> None:
    params = {
        "MessageSid": "SM1",
        "MessageStatus": "delivered",
        "To": "+14155550123",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator("token").compute_signature(URL, params)
    assert valid_signature("token", URL, params, signature)
    assert not valid_signature("other-token", URL, params, signature)
    assert not valid_signature("token", URL, {**params, "MessageStatus": "failed"}, signature)
    assert not valid_signature("token", URL.replace("eu", "us"), params, signature)
    assert not valid_signature("token", URL, params, "")
