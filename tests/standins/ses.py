"""A stand-in for Amazon SES's v2 SendEmail (``POST /v2/email/outbound-emails``), speaking its documented wire
format (the real service is unreachable from the machines the tests run on). It checks the AWS Signature
Version 4 itself, written here from AWS's documentation (not with botocore, which notify signs with), over
the exact bytes received. Errors carry ``x-amzn-ErrorType`` and ``{"message"}``; a sender other than the
verified one is ``MessageRejected``, a recipient without ``@`` ``BadRequestException``."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

REGION = "eu-west-1"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
VERIFIED_SENDER = "notify@example.com"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(
    request: web.Request, body: bytes, secret: str, signed_headers: list[str], date: str
) -> str:
    """AWS Signature Version 4 of ``request`` as AWS documents it ("Create a signed AWS API request")."""
    canonical_headers = "".join(
        f"{h}:{' '.join(request.headers.get(h, '').split())}\n" for h in signed_headers
    )
    canonical = "\n".join(
        [
            request.method,
            quote(request.path, safe="/-_.~"),
            "",  # no query string
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    day = date[:8]
    scope = f"{day}/{REGION}/ses/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), REGION), "ses"), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class SesStandIn:
    emails: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)  # recipients SES refuses (MessageRejected)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/email/outbound-emails", self.send_email)
        return app

    @staticmethod
    def error(status: int, error_type: str, message: str) -> web.Response:
        return web.json_response(
            {"message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
        )

    def signed(self, request: web.Request, body: bytes) -> bool:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return False
        parts = dict(
            p.strip().split("=", 1) for p in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
        )
        credential = parts.get("Credential", "").split("/")
        if credential[0] != ACCESS_KEY_ID or credential[2:] != [REGION, "ses", "aws4_request"]:
            return False
        signed_headers = parts.get("SignedHeaders", "").split(";")
        if not {"host", "x-amz-date"} <= set(signed_headers):
            return False
        date = request.headers.get("X-Amz-Date", "")
        expected = sigv4_signature(request, body, SECRET_ACCESS_KEY, signed_headers, date)
        return hmac.compare_digest(expected, parts.get("Signature", ""))

    async def send_email(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.signed(request, body):
            return self.error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if self.fail_next:
            status, error_type = self.fail_next.pop(0)
            return self.error(status, error_type, "Please try again.")
        email = await request.json()
        if email.get("FromEmailAddress") != VERIFIED_SENDER:
            return self.error(400, "MessageRejected", "Email address is not verified.")
        to = email["Destination"]["ToAddresses"]
        if any("@" not in address for address in to):
            return self.error(400, "BadRequestException", "Invalid email address.")
        if self.rejected & set(to):
            return self.error(400, "MessageRejected", "Email address is on the suppression list.")
        message_id = f"0100018c{uuid.uuid4().hex}-000000"
        self.emails.append({"MessageId": message_id, **email})
        return web.json_response({"MessageId": message_id})
