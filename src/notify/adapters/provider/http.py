"""A provider gateway reached over HTTP (docs/providers.md), with every outcome mapped to the errors tree."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from opentelemetry.trace import SpanKind, Status, StatusCode

from notify.adapters.telemetry.tracing import inject_headers, span_in
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

# What is read of an answer: enough for a message id or an error page's first lines, never the whole of a
# runaway body.
MAX_ANSWER_BYTES = 64 * 1024
MAX_ERROR_CHARS = 300
# A Retry-After longer than this is read as this (the retry policy caps what it honours anyway).
MAX_RETRY_AFTER_S = 7 * 24 * 3600.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or unreadable;
    never more than a week."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) if len(value) < 9 else MAX_RETRY_AFTER_S
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_RETRY_AFTER_S, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


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
        # The CLIENT span of the provider call; the gateway gets its context in ``traceparent``.
        with span_in(
            f"POST {self.name}",
            None,
            SpanKind.CLIENT,
            {
                "http.request.method": "POST",
                "url.full": self._url,
                "notify.provider": self.name,
                "notify.attempt": message.attempt,
                "notification.id": str(message.notification_id),
            },
        ) as span:
            try:
                receipt = await self._send(message)
            except (TransientProviderError, PermanentProviderError) as exc:
                if exc.status is not None:
                    span.set_attribute("http.response.status_code", exc.status)
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise
            return receipt

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
        try:
            async with self._session.post(
                self._url, data=payload, headers=headers, timeout=self._timeout
            ) as resp:
                # Bounded, and decoded whatever the bytes: a provider's answer is not trusted to be sane.
                raw = await resp.content.read(MAX_ANSWER_BYTES)
                text = raw.decode("utf-8", "replace")
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise TransientProviderError(f"{self.name}: no answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise TransientProviderError(f"{self.name}: connection failed: {exc!r}") from exc
        except asyncio.CancelledError:
            raise
        if 200 <= status < 300:
            return ProviderReceipt(self.name, _message_id(text) or str(message.notification_id))
        snippet = storable(text, MAX_ERROR_CHARS)
        if status == 429 or status >= 500:
            raise TransientProviderError(
                f"{self.name}: HTTP {status}: {snippet}", status=status, retry_after_s=retry_after
            )
        raise PermanentProviderError(f"{self.name}: HTTP {status}: {snippet}", status=status)


def sign(secret: bytes, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
    """``X-Notify-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``; the timestamp lets a receiver
    refuse replays of an old signed request."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret, ts.encode() + b"." + payload, hashlib.sha256).hexdigest()
    return {"X-Notify-Timestamp": ts, "X-Notify-Signature": f"sha256={digest}"}


def _message_id(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("message_id", "id"):
            value = data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                found = identifier(str(value))
                if found:
                    return found
    return None
