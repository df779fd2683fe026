"""What every provider adapter does around its call: the CLIENT span of the provider call, and an HTTP POST
whose answer is read bounded and whose network failures are transient errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from notify.adapters.telemetry.metrics import PUSH_TOKENS_UNREGISTERED
from notify.adapters.telemetry.tracing import span_in
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage

# What is read of an answer: enough for a message id or an error page's first lines, never the whole of a
# runaway body.
MAX_ANSWER_BYTES = 64 * 1024
# How much of a provider's error text is kept (in the error message, the attempts ledger).
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


@contextmanager
def provider_span(
    provider: str, message: ProviderMessage, target: str, method: str = "POST"
) -> Iterator[Span]:
    """The CLIENT span of one provider call (``target``: its URL or host); a provider error marks it
    failed."""
    with span_in(
        f"{method} {provider}",
        None,
        SpanKind.CLIENT,
        {
            "http.request.method": method,
            "url.full": target,
            "notify.provider": provider,
            "notify.attempt": message.attempt,
            "notification.id": str(message.notification_id),
        },
    ) as span:
        try:
            yield span
        except (TransientProviderError, PermanentProviderError) as exc:
            if exc.status is not None:
                span.set_attribute("http.response.status_code", exc.status)
            span.set_status(Status(StatusCode.ERROR, exc.message))
            raise


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer, its body read bounded."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        # Decoded whatever the bytes: a provider's answer is not trusted to be sane.
        return self.body.decode("utf-8", "replace")

    @property
    def retry_after_s(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; empty when it is not one."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


async def post(
    session: aiohttp.ClientSession, provider: str, url: str, limit: aiohttp.ClientTimeout, **request: Any
) -> Answer:
    """POST ``request`` (aiohttp's arguments) to ``url`` within ``limit``; a timeout or a connection failure
    is transient."""
    try:
        async with session.post(url, timeout=limit, **request) as resp:
            body = await resp.content.read(MAX_ANSWER_BYTES)
            return Answer(resp.status, body, CIMultiDict(resp.headers))  # header names in any case
    except TimeoutError as exc:
        raise TransientProviderError(f"{provider}: no answer within {limit.total}s") from exc
    except aiohttp.ClientError as exc:
        raise TransientProviderError(f"{provider}: connection failed: {exc!r}") from exc
    except asyncio.CancelledError:
        raise


def unregistered_token(provider: str, detail: str, status: int) -> PermanentProviderError:
    """The error for a push token the provider no longer knows (the app was uninstalled): permanent, counted,
    and saying so, so the sender can drop the token."""
    PUSH_TOKENS_UNREGISTERED.labels(provider).inc()
    return PermanentProviderError(
        f"{detail} (unregistered token: the app is gone from this device; drop the token)", status=status
    )
