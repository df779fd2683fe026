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

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from opentelemetry.trace import SpanKind, Status, StatusCode

from notify.adapters.provider.email_content import is_html, plain_text_of
from notify.adapters.provider.http import MAX_ANSWER_BYTES, parse_retry_after
from notify.adapters.telemetry.tracing import span_in
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

MAX_ERROR_CHARS = 300
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
        with span_in(
            f"POST {self.name}",
            None,
            SpanKind.CLIENT,
            {
                "http.request.method": "POST",
                "url.full": self._config.url,
                "notify.provider": self.name,
                "notify.attempt": message.attempt,
                "notification.id": str(message.notification_id),
            },
        ) as span:
            try:
                return await self._send(message)
            except (TransientProviderError, PermanentProviderError) as exc:
                if exc.status is not None:
                    span.set_attribute("http.response.status_code", exc.status)
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise

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
        try:
            async with self._session.post(
                self._config.url, data=payload, headers=self.signed_headers(payload), timeout=self._timeout
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES)
                status = resp.status
                error_type = resp.headers.get("x-amzn-ErrorType", "").split(":")[0]
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise TransientProviderError(f"{self.name}: no answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise TransientProviderError(f"{self.name}: connection failed: {exc!r}") from exc
        except asyncio.CancelledError:
            raise
        answer = _json(raw)
        if status == 200:
            message_id = identifier(str(answer.get("MessageId") or ""))
            if message_id is None:
                raise TransientProviderError(f"{self.name}: HTTP 200 without a MessageId", status=status)
            return ProviderReceipt(self.name, message_id)
        error_type = error_type or str(answer.get("__type") or answer.get("code") or "")
        text = storable(str(answer.get("message") or answer.get("Message") or raw[:200]), MAX_ERROR_CHARS)
        detail = f"{self.name}: HTTP {status}" + (f" {error_type}" if error_type else "") + f": {text}"
        if status == 429 or status >= 500 or status == 403 or error_type in _ACCOUNT_AT_FAULT:
            raise TransientProviderError(detail, status=status, retry_after_s=retry_after)
        if 400 <= status < 500:
            raise PermanentProviderError(detail, status=status)
        raise TransientProviderError(detail, status=status)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
