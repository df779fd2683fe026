"""Push to Apple devices through APNs: ``POST /3/device/{token}`` over HTTP/2 (httpx), with token-based
authentication (an ES256 JWT from the team's signing key, reused for 50 minutes: Apple refuses one older than
an hour and throttles one renewed more often than every 20 minutes); every answer mapped to the errors tree.

- ``apns-id`` is the notification id, the same on every attempt, so a retried send is recognisable.
- ``410 Unregistered`` (the app was uninstalled) is permanent, counted in
  ``notify_push_tokens_unregistered_total`` and said in the error text, so the caller can drop the token.
  Other 400s (``BadDeviceToken``, ``DeviceTokenNotForTopic``, ``PayloadTooLarge``, ...) are permanent.
- ``403 ExpiredProviderToken``/``InvalidProviderToken`` are transient and renew the JWT; other 403s, 429,
  500 and 503 transient (a ``Retry-After`` honoured).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from notify.adapters.provider.calls import (
    MAX_ERROR_CHARS,
    parse_retry_after,
    provider_span,
    unregistered_token,
)
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

APNS_PRODUCTION = "https://api.push.apple.com"
APNS_SANDBOX = "https://api.sandbox.push.apple.com"
TOKEN_LIFETIME_S = 50 * 60
_RENEW_TOKEN = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


@dataclass(frozen=True, slots=True)
class ApnsConfig:
    team_id: str
    key_id: str
    private_key: str  # the .p8 signing key (PEM)
    topic: str  # the app's bundle id
    base_url: str = APNS_PRODUCTION
    ca_file: str | None = None  # trust this CA instead of the system's (a proxy; the tests' stand-in)
    timeout_s: float = 10.0


class ApnsProvider:
    def __init__(self, name: str, config: ApnsConfig) -> None:
        self.name = name
        self._config = config
        self._client: httpx.AsyncClient | None = None  # made on the first send: nothing opens at build time
        self._jwt: str | None = None
        self._jwt_made_at = 0.0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            context = ssl.create_default_context(cafile=self._config.ca_file)
            self._client = httpx.AsyncClient(
                http2=True, verify=context, timeout=self._config.timeout_s, base_url=self._config.base_url
            )
        return self._client

    def _bearer(self) -> str:
        if self._jwt is None or time.monotonic() - self._jwt_made_at > TOKEN_LIFETIME_S:
            self._jwt = jwt.encode(
                {"iss": self._config.team_id, "iat": int(time.time())},
                self._config.private_key,
                algorithm="ES256",
                headers={"kid": self._config.key_id},
            )
            self._jwt_made_at = time.monotonic()
        return self._jwt

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        with provider_span(self.name, message, f"{self._config.base_url}/3/device/"):
            return await self._send(message)

    @staticmethod
    def payload(message: ProviderMessage) -> dict[str, Any]:
        alert: dict[str, str] = {"body": message.content}
        if message.subject:
            alert["title"] = message.subject
        return {"aps": {"alert": alert}, "notification_id": str(message.notification_id)}

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        headers = {
            "authorization": f"bearer {self._bearer()}",
            "apns-topic": self._config.topic,
            "apns-push-type": "alert",
            "apns-id": str(message.notification_id),
            "apns-priority": "10",
        }
        try:
            response = await self._http().post(
                f"/3/device/{message.to}", json=self.payload(message), headers=headers
            )
        except httpx.TimeoutException as exc:
            raise TransientProviderError(f"{self.name}: no answer within {self._config.timeout_s}s") from exc
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise TransientProviderError(f"{self.name}: connection failed: {exc!r}") from exc
        except asyncio.CancelledError:
            raise
        status = response.status_code
        if status == 200:
            apns_id = identifier(response.headers.get("apns-id", "")) or str(message.notification_id)
            return ProviderReceipt(self.name, apns_id)
        reason = _reason(response.content)
        detail = f"{self.name}: HTTP {status} {reason}".rstrip()
        if status == 410 or reason == "Unregistered":
            raise unregistered_token(self.name, detail, status)
        if reason in _RENEW_TOKEN:
            self._jwt = None
        if status == 400 or status == 404 or status == 405 or status == 413:
            raise PermanentProviderError(detail, status=status)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientProviderError(detail, status=status, retry_after_s=retry_after)


def _reason(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return storable(raw[:200].decode("utf-8", "replace"), MAX_ERROR_CHARS)
    reason = data.get("reason") if isinstance(data, dict) else None
    return storable(str(reason), MAX_ERROR_CHARS) if reason else ""
