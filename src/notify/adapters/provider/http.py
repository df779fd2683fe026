"""A provider gateway reached over HTTP (docs/providers.md), with every outcome mapped to the errors tree."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp

from notify.adapters.provider.calls import MAX_ERROR_CHARS, Answer, post, provider_span
from notify.adapters.telemetry.tracing import inject_headers
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt


class HttpProvider:
    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float,
        hmac_secret: str | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._secret = hmac_secret.encode() if hmac_secret else None

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        # The gateway gets the call's span context in ``traceparent``.
        with provider_span(self.name, message, self._url):
            return await self._send(message)

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        body = {
            "id": str(message.notification_id),
            "to": message.to,
            "channel": message.channel,
            "subject": message.subject,
            "content": message.content,
            "metadata": message.metadata,
        }
        # The key is the notification id alone, the same on every attempt: a gateway that saw an earlier
        # attempt whose answer we never got (timeout, worker crash) can drop the repeat.
        headers = {"Idempotency-Key": str(message.notification_id), "X-Notify-Attempt": str(message.attempt)}
        if message.correlation_id:
            headers["X-Correlation-ID"] = message.correlation_id
        inject_headers(headers)
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
        if self._secret is not None:
            headers.update(sign(self._secret, payload))  # signs exactly the bytes sent
        answer = await post(self._session, self.name, self._url, self._timeout, data=payload, headers=headers)
        status = answer.status
        if 200 <= status < 300:
            return ProviderReceipt(self.name, _message_id(answer) or str(message.notification_id))
        snippet = storable(answer.text, MAX_ERROR_CHARS)
        if status == 429 or status >= 500:
            raise TransientProviderError(
                f"{self.name}: HTTP {status}: {snippet}", status=status, retry_after_s=answer.retry_after_s
            )
        raise PermanentProviderError(f"{self.name}: HTTP {status}: {snippet}", status=status)


def sign(secret: bytes, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
    """``X-Notify-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``; the timestamp lets a receiver
    refuse replays of an old signed request."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret, ts.encode() + b"." + payload, hashlib.sha256).hexdigest()
    return {"X-Notify-Timestamp": ts, "X-Notify-Signature": f"sha256={digest}"}


def _message_id(answer: Answer) -> str | None:
    data = answer.json()
    for key in ("message_id", "id"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            found = identifier(str(value))
            if found:
                return found
    return None
