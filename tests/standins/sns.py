"""A stand-in for Amazon SNS delivering a topic's messages to an HTTP endpoint, as AWS documents it (the real
service is unreachable from the machines the tests run on): messages signed (SignatureVersion 1: SHA1, 2:
SHA256, PKCS#1 v1.5) with the key of a certificate it serves at ``SigningCertURL``, and a ``SubscribeURL``
that records the confirmation. The string to sign is written here from AWS's documentation, not shared with
notify's verifier."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:notify-ses-events"
TEST_URL_PATTERN = r"^http://127\.0\.0\.1:[0-9]+/"  # instead of AWS's own hosts


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsStandIn:
    base_url: str = ""  # set once it listens
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    confirmed: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/SimpleNotificationService-test.pem", self.certificate)
        app.router.add_get("/confirm", self.confirm)
        return app

    async def certificate(self, request: web.Request) -> web.Response:
        return web.Response(body=_certificate(self.key), content_type="application/x-pem-file")

    async def confirm(self, request: web.Request) -> web.Response:
        self.confirmed.append(request.query["Token"])
        return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")

    def sign(
        self, message: dict[str, Any], version: str = "2", key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, Any]:
        if message["Type"] == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = (key or self.key).sign(text.encode(), padding.PKCS1v15(), digest)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": f"{self.base_url}/SimpleNotificationService-test.pem",
        }

    def _common(self, kind: str, text: str) -> dict[str, Any]:
        return {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC_ARN,
            "Message": text,
            "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }

    def subscription_confirmation(self) -> dict[str, Any]:
        token = uuid.uuid4().hex
        message = self._common(
            "SubscriptionConfirmation", f"You have chosen to subscribe to the topic {TOPIC_ARN}."
        )
        message |= {"Token": token, "SubscribeURL": f"{self.base_url}/confirm?Token={token}"}
        return self.sign(message)

    def ses_event(self, event_type: str, message_id: str, **details: Any) -> dict[str, Any]:
        event = {
            "eventType": event_type,
            "mail": {"messageId": message_id, "source": "notify@example.com"},
        } | details
        return self.sign(self._common("Notification", json.dumps(event)))
