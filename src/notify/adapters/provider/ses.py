"""Email through Amazon SES's v2 API (``POST /v2/email/outbound-emails``, SendEmail), signed with AWS
Signature Version 4 (botocore's signer: the request is signed over exactly the bytes sent) and sent over the
worker's shared aiohttp session; every answer mapped to the errors tree (docs/providers.md).

- The notification id travels as the ``notification_id`` email tag (SES events carry it back).
- Content that is an HTML document is sent as the HTML body with a plain-text rendering as the text body.
- ``MessageRejected``, ``BadRequestException`` and other 4xx are permanent; 429
  (``TooManyRequestsException``), 5xx and network failures transient; so is what the account is at fault
  for, not the message: a refused signature or credentials (403), ``AccountSuspendedException``,
  ``SendingPausedException``, ``MailFromDomainNotVerifiedException``, ``LimitExceededException``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from notify.adapters.provider.calls import MAX_ERROR_CHARS, post, provider_span
from notify.adapters.provider.email_content import is_html, plain_text_of
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

_ACCOUNT_AT_FAULT = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "LimitExceededException",
        "TooManyRequestsException",
    }
)


@dataclass(frozen=True, slots=True)
class SesConfig:
    region: str
    access_key_id: str
    secret_access_key: str
    sender: str  # FromEmailAddress
    session_token: str | None = None
    configuration_set: str | None = None  # where SES publishes this email's events
    endpoint_url: str | None = None  # default: https://email.<region>.amazonaws.com
    timeout_s: float = 10.0

    @property
    def url(self) -> str:
        base = self.endpoint_url or f"https://email.{self.region}.amazonaws.com"
        return f"{base.rstrip('/')}/v2/email/outbound-emails"


class SesProvider:
    def __init__(self, name: str, config: SesConfig, session: aiohttp.ClientSession) -> None:
        self.name = name
        self._config = config
        self._session = session
        self._signer = SigV4Auth(
            Credentials(config.access_key_id, config.secret_access_key, config.session_token),
            "ses",
            config.region,
        )
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s)

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        with provider_span(self.name, message, self._config.url):
            return await self._send(message)

    def body(self, message: ProviderMessage) -> dict[str, Any]:
        def text(data: str) -> dict[str, str]:
            return {"Data": data, "Charset": "UTF-8"}

        if is_html(message.content):
            content = {"Text": text(plain_text_of(message.content)), "Html": text(message.content)}
        else:
            content = {"Text": text(message.content)}
        body: dict[str, Any] = {
            "FromEmailAddress": self._config.sender,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {"Simple": {"Subject": text(message.subject or ""), "Body": content}},
            "EmailTags": [{"Name": "notification_id", "Value": str(message.notification_id)}],
        }
        if self._config.configuration_set:
            body["ConfigurationSetName"] = self._config.configuration_set
        return body

    def signed_headers(self, payload: bytes) -> dict[str, str]:
        request = AWSRequest(
            method="POST", url=self._config.url, data=payload, headers={"Content-Type": "application/json"}
        )
        self._signer.add_auth(request)
        return dict(request.headers.items())

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        payload = json.dumps(self.body(message), separators=(",", ":")).encode()
        answer = await post(
            self._session,
            self.name,
            self._config.url,
            self._timeout,
            data=payload,
            headers=self.signed_headers(payload),
        )
        status, body = answer.status, answer.json()
        if status == 200:
            message_id = identifier(str(body.get("MessageId") or ""))
            if message_id is None:
                raise TransientProviderError(f"{self.name}: HTTP 200 without a MessageId", status=status)
            return ProviderReceipt(self.name, message_id)
        error_type = answer.headers.get("x-amzn-ErrorType", "").split(":")[0]
        error_type = error_type or str(body.get("__type") or body.get("code") or "")
        text = storable(str(body.get("message") or body.get("Message") or answer.text), MAX_ERROR_CHARS)
        detail = f"{self.name}: HTTP {status}" + (f" {error_type}" if error_type else "") + f": {text}"
        if status == 429 or status >= 500 or status == 403 or error_type in _ACCOUNT_AT_FAULT:
            raise TransientProviderError(detail, status=status, retry_after_s=answer.retry_after_s)
        if 400 <= status < 500:
            raise PermanentProviderError(detail, status=status)
        raise TransientProviderError(detail, status=status)
