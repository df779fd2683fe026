"""Amazon SNS messages (how SES publishes a configuration set's events to an HTTPS endpoint): their signature
checked as AWS documents it, and SES events read as receipts.

An SNS message is signed with the private key of the certificate at its ``SigningCertURL``; the URL must be
AWS's own (``url_pattern``: the setting ``sns_url_pattern``, ``https://sns.<region>.amazonaws.com/...``), else
anyone could sign with a certificate of their own. Certificates are fetched once per URL and kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notify.domain.receipts import Receipt, ReceiptStatus
from notify.domain.text import storable

log = logging.getLogger(__name__)

MAX_CERT_BYTES = 64 * 1024

# The fields signed, in this order, for each message type (AWS: "Verifying the signatures of Amazon SNS
# messages"); a field absent from the message (Subject) is left out.
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


def string_to_sign(message: Mapping[str, Any]) -> bytes | None:
    fields = _SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        return None
    text = "".join(f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None)
    return text.encode()


class SnsVerifier:
    def __init__(self, session: aiohttp.ClientSession, *, url_pattern: str) -> None:
        self._session = session
        self._url = re.compile(url_pattern)
        self._certificates: dict[str, rsa.RSAPublicKey] = {}
        self._lock = asyncio.Lock()

    def trusted_url(self, url: object) -> bool:
        return isinstance(url, str) and self._url.match(url) is not None

    async def _public_key(self, url: str) -> rsa.RSAPublicKey | None:
        async with self._lock:
            if url not in self._certificates:
                try:
                    async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                        if resp.status != 200:
                            return None
                        pem = await resp.content.read(MAX_CERT_BYTES)
                    key = x509.load_pem_x509_certificate(pem).public_key()
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    log.warning("SNS signing certificate unavailable", extra={"url": url, "error": repr(exc)})
                    return None
                if not isinstance(key, rsa.RSAPublicKey):
                    return None
                self._certificates[url] = key
            return self._certificates[url]

    async def verify(self, message: Mapping[str, Any]) -> bool:
        """True when ``message`` is signed by the certificate at its (trusted) SigningCertURL."""
        url = message.get("SigningCertURL")
        signed = string_to_sign(message)
        digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
        if not self.trusted_url(url) or signed is None or digest is None:
            return False
        assert isinstance(url, str)
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except ValueError:
            return False
        key = await self._public_key(url)
        if key is None:
            return False
        try:
            key.verify(signature, signed, padding.PKCS1v15(), digest)
        except InvalidSignature:
            return False
        return True


def ses_receipt(provider: str, event_text: str, received_at: datetime) -> Receipt | None:
    """The receipt an SES event reports (the ``Message`` of an SNS notification); None for an event that is
    not about the message's fate (opens, clicks, rendering failures) or is unreadable."""
    try:
        event = json.loads(event_text)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("mail"), dict):
        return None
    kind = str(event.get("eventType") or event.get("notificationType") or "")
    message_id = event["mail"].get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return None
    error: str | None = None
    if kind == "Delivery":
        status = ReceiptStatus.DELIVERED
    elif kind == "Bounce":
        status = ReceiptStatus.BOUNCED
        bounce = _object(event.get("bounce"))
        error = "/".join(str(bounce.get(k)) for k in ("bounceType", "bounceSubType") if bounce.get(k)) or None
    elif kind == "Complaint":
        status = ReceiptStatus.COMPLAINED
        complaint = _object(event.get("complaint"))
        error = (
            str(complaint.get("complaintFeedbackType")) if complaint.get("complaintFeedbackType") else None
        )
    elif kind == "Reject":
        status = ReceiptStatus.UNDELIVERED
    elif kind in ("Send", "DeliveryDelay"):
        status = ReceiptStatus.IN_TRANSIT
    else:
        return None
    return Receipt(
        provider=provider,
        provider_message_id=storable(message_id, 255),
        status=status,
        provider_status=storable(kind, 64),
        received_at=received_at,
        error_code=storable(error, 64) if error else None,
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
