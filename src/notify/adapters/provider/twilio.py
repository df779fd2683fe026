"""SMS through Twilio's Messages REST API (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``), over the
worker's shared aiohttp session; every answer mapped to the errors tree (docs/providers.md).

- Authentication: HTTP Basic with the account SID and auth token, or an API key SID and secret.
- Sender: a messaging service SID (Twilio picks the number) or a from-number.
- The message SID (``SM…``) is the provider message id; a status callback URL, when configured, makes Twilio
  report the handset outcome later (``/api/v1/receipts/twilio/{provider}``).
- Errors: 429, 5xx and network failures are transient; an authentication failure (401, Twilio error 20003)
  too (the account is at fault, not the message: it fails over); any other 4xx is permanent (21211 invalid
  number, 21610 opted out, 21614 not a mobile number, 21408 a region the account may not send to, ...), its
  Twilio error code in the error text.

Twilio has no idempotency key for sending a message: a retry after an answer that was lost (a timeout) can
send the message twice. The timeout is the only way that happens; docs/providers.md says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from notify.adapters.provider.calls import MAX_ERROR_CHARS, post, provider_span
from notify.domain.errors import FieldError, PermanentProviderError, TransientProviderError, ValidationFailed
from notify.domain.receipts import Receipt, ReceiptStatus
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

TWILIO_API = "https://api.twilio.com"

AUTH_CODES = frozenset({20003, 20005})  # authentication failed, account suspended


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str
    username: str  # the account SID, or an API key SID (SK…)
    password: str  # the auth token, or the API key secret
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    base_url: str = TWILIO_API
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("give either from_number or messaging_service_sid")


class TwilioProvider:
    def __init__(self, name: str, config: TwilioConfig, session: aiohttp.ClientSession) -> None:
        self.name = name
        self._config = config
        self._session = session
        self._url = f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        self._headers = {"Authorization": aiohttp.encode_basic_auth(config.username, config.password)}
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s)

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        with provider_span(self.name, message, self._url):
            return await self._send(message)

    def form(self, message: ProviderMessage) -> dict[str, str]:
        config = self._config
        form = {"To": message.to, "Body": message.content}
        if config.messaging_service_sid:
            form["MessagingServiceSid"] = config.messaging_service_sid
        else:
            assert config.from_number is not None
            form["From"] = config.from_number
        if config.status_callback_url:
            form["StatusCallback"] = config.status_callback_url
        return form

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        answer = await post(
            self._session, self.name, self._url, self._timeout, data=self.form(message), headers=self._headers
        )
        status, body = answer.status, answer.json()
        if 200 <= status < 300:
            sid = identifier(str(body.get("sid") or ""))
            if sid is None:
                raise TransientProviderError(
                    f"{self.name}: HTTP {status} without a message sid", status=status
                )
            return ProviderReceipt(self.name, sid)
        code = body.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        text = body.get("message") if isinstance(body.get("message"), str) else answer.text
        detail = f"{self.name}: HTTP {status}" + (f", Twilio error {code}" if code else "")
        detail += f": {storable(str(text), MAX_ERROR_CHARS)}"
        if status == 429 or status >= 500 or status == 401 or code in AUTH_CODES:
            raise TransientProviderError(detail, status=status, retry_after_s=answer.retry_after_s)
        if 400 <= status < 500:  # 21211 invalid number, 21610 opted out, 21614 not a mobile, ...
            raise PermanentProviderError(detail, status=status)
        raise TransientProviderError(detail, status=status)


# --- receipts: Twilio's status callback -------------------------------------------------------------------

# Twilio's MessageStatus values that are an outcome (its docs: Message resource, "message status values");
# every other one (queued, sending, sent, accepted, scheduled) is on its way.
_OUTCOMES = {
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.DELIVERED,
    "undelivered": ReceiptStatus.UNDELIVERED,
    "failed": ReceiptStatus.UNDELIVERED,
    "canceled": ReceiptStatus.UNDELIVERED,
}


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """What Twilio sends as ``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, the URL it called followed by
    each POST parameter's name and value, names sorted))."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def valid_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    return hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), signature.encode())


def twilio_receipt(provider: str, params: Mapping[str, str], received_at: datetime) -> Receipt:
    """The receipt a status callback reports; a 400 when it names no message or no status."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    missing = [name for name, value in (("MessageSid", sid), ("MessageStatus", status)) if not value]
    if sid is None or status is None or missing:
        raise ValidationFailed.for_fields([FieldError(name, "is required", "required") for name in missing])
    return Receipt(
        provider=provider,
        provider_message_id=storable(sid, 255),
        status=_OUTCOMES.get(status, ReceiptStatus.IN_TRANSIT),
        provider_status=storable(status, 64),
        received_at=received_at,
        error_code=storable(params["ErrorCode"], 32) if params.get("ErrorCode") else None,
    )
