"""A gateway in front of an SES-style email API: notify's contract in, the provider's API out.

SES-style: ``POST {base}/v2/email/outbound-emails`` with a JSON body (sender, destination, subject, text),
signed with AWS Signature Version 4 (botocore's signer); ``200`` with ``MessageId``; errors carry their type
in the ``x-amzn-ErrorType`` header (or ``__type`` in the body). Services with an SES-compatible API take
this as it is; for Amazon SES itself notify has a built-in provider (``"type": "ses"``).

Run it (then ``NOTIFY_PROVIDERS='{"email": [{"name": "mail-gw", "url": "http://gw:9201/send",
"hmac_secret": "..."}]}'``)::

    MAIL_API_BASE=https://email.eu-west-1.amazonaws.com MAIL_REGION=eu-west-1 \\
    MAIL_FROM=no-reply@example.com AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... GATEWAY_HMAC_SECRET=... \\
    python -m examples.gateways.ses_style --port 9201
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

from aiohttp import ClientSession, ClientTimeout, web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from examples.gateways.gateway import Message, Outcome, create_gateway

# Throttling: wait and retry. Account or configuration problems: the operator must act; until then, wait.
THROTTLED = {"TooManyRequestsException", "LimitExceededException", "ThrottlingException"}
ACCOUNT_PROBLEMS = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
}


@dataclass(frozen=True)
class SesStyle:
    base_url: str
    region: str
    sender: str
    credentials: Credentials
    timeout_s: float = 10.0

    def _signed(self, url: str, body: bytes) -> dict[str, str]:
        request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(self.credentials, "ses", self.region).add_auth(request)  # signs exactly these bytes
        return dict(request.headers.items())

    async def __call__(self, message: Message, session: ClientSession) -> Outcome:
        if message.channel != "email":
            return Outcome.refused(f"this gateway sends email, not {message.channel}")
        url = f"{self.base_url}/v2/email/outbound-emails"
        body = json.dumps(
            {
                "FromEmailAddress": self.sender,
                "Destination": {"ToAddresses": [message.to]},
                "Content": {
                    "Simple": {
                        "Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                        "Body": {"Text": {"Data": message.content, "Charset": "UTF-8"}},
                    }
                },
                # The notification id travels with the message (and comes back in SES's events).
                "EmailTags": [{"Name": "notification_id", "Value": message.id}],
            }
        ).encode()
        async with session.post(
            url, data=body, headers=self._signed(url, body), timeout=ClientTimeout(self.timeout_s)
        ) as r:
            data = await r.json(content_type=None) if r.content_length != 0 else {}
            data = data if isinstance(data, dict) else {}
            if r.status == 200:
                return Outcome.delivered(str(data["MessageId"]))
            kind = (r.headers.get("x-amzn-ErrorType") or str(data.get("__type", ""))).split(":")[0]
            error = f"HTTP {r.status} {kind}: {data.get('message') or data.get('Message')}"
            if kind in THROTTLED or r.status == 429:
                return Outcome.unavailable(error, retry_after=r.headers.get("Retry-After"), throttled=True)
            if r.status >= 500 or kind in ACCOUNT_PROBLEMS:
                return Outcome.unavailable(error)
            return Outcome.refused(
                error
            )  # MessageRejected, BadRequestException: this message, not the account


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9201)
    args = parser.parse_args(argv)
    credentials = Credentials(
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_SESSION_TOKEN"),
    )
    send = SesStyle(
        os.environ["MAIL_API_BASE"], os.environ["MAIL_REGION"], os.environ["MAIL_FROM"], credentials
    )
    web.run_app(
        create_gateway(send, hmac_secret=os.environ.get("GATEWAY_HMAC_SECRET")),
        host=args.host,
        port=args.port,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
