"""Sends a webhook delivery over HTTP, signed as the Standard Webhooks specification says (the
``standardwebhooks`` package signs): ``webhook-id`` (the same on every retry), ``webhook-timestamp``
(seconds), ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``; during a secret
rotation, one signature per valid secret, space-separated)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from notify.domain.webhooks import WebhookCall, WebhookDelivery, WebhookEndpoint
from notify.ports.clock import Clock

MAX_ANSWER_CHARS = 200


def webhook_body(delivery: WebhookDelivery) -> str:
    """``{"type": "notification.<status>", "timestamp", "data": <the status event>}``."""
    event: dict[str, Any] = delivery.payload
    return orjson.dumps(
        {"type": delivery.event_type, "timestamp": event.get("timestamp"), "data": event}
    ).decode()


def signed_headers(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, body: str, now: datetime
) -> dict[str, str]:
    signatures = [Webhook(secret).sign(delivery.message_id, now, body) for secret in endpoint.secrets_at(now)]
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "Content-Type": "application/json",
        "User-Agent": "notify-webhooks/1",
    }


class HttpWebhookSender:
    def __init__(self, http: aiohttp.ClientSession, clock: Clock, *, timeout_s: float) -> None:
        self._http = http
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> WebhookCall:
        body = webhook_body(delivery)
        headers = signed_headers(endpoint, delivery, body, now)
        started = self._clock.now()
        try:
            async with self._http.post(
                endpoint.url,
                data=body.encode(),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as answer:
                status = answer.status
                error = None
                if not 200 <= status < 300:
                    text = (await answer.content.read(MAX_ANSWER_CHARS)).decode("utf-8", "replace")
                    error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        except TimeoutError:
            return WebhookCall(started, self._clock.now(), None, "timed out")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return WebhookCall(
                started, self._clock.now(), None, f"{type(exc).__name__}: {exc}"[:MAX_ANSWER_CHARS]
            )
        return WebhookCall(started, self._clock.now(), status, error)
