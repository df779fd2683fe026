"""Push through Firebase Cloud Messaging's HTTP v1 API (``POST /v1/projects/{project}/messages:send``), with
a service account's OAuth2 access token (a signed JWT exchanged at the account's token URI, cached until a
minute before it expires, refreshed by one caller at a time); every answer mapped to the errors tree.

- An unregistered token (``UNREGISTERED``, the app was uninstalled) is permanent, counted in
  ``notify_push_tokens_unregistered_total`` and said in the error text, so the caller can drop the token.
- ``INVALID_ARGUMENT`` and ``SENDER_ID_MISMATCH`` are permanent; ``QUOTA_EXCEEDED`` (429), ``UNAVAILABLE``
  and ``INTERNAL`` transient (a ``Retry-After`` honoured); an authentication failure (401,
  ``THIRD_PARTY_AUTH_ERROR``) transient: the account is at fault, and the cached token is dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
import jwt

from notify.adapters.provider.calls import MAX_ERROR_CHARS, post, provider_span, unregistered_token
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import identifier, storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

FCM_API = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_REFRESH_BEFORE_S = 60.0
_PERMANENT = frozenset({"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"})


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The fields of a Google service account key file that FCM needs."""

    project_id: str
    client_email: str
    private_key: str  # PEM
    token_uri: str = GOOGLE_TOKEN_URI

    @classmethod
    def from_json(cls, text: str) -> Self:
        """From the key file's JSON (checked when the settings are read)."""
        data = json.loads(text)
        return cls(
            project_id=str(data["project_id"]),
            client_email=str(data["client_email"]),
            private_key=str(data["private_key"]),
            token_uri=str(data.get("token_uri") or GOOGLE_TOKEN_URI),
        )


class GoogleAccessToken:
    """An OAuth2 access token for ``account``, fetched with the JWT bearer grant and cached."""

    def __init__(self, account: ServiceAccount, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._account = account
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def drop(self) -> None:
        self._token = None

    async def get(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at - _REFRESH_BEFORE_S:
            return self._token
        async with self._lock:  # one refresh, however many sends wait for it
            if self._token is not None and time.monotonic() < self._expires_at - _REFRESH_BEFORE_S:
                return self._token
            self._token, lifetime = await self._fetch()
            self._expires_at = time.monotonic() + lifetime
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": self._account.client_email,
                "scope": SCOPE,
                "aud": self._account.token_uri,
                "iat": now,
                "exp": now + 3600,
            },
            self._account.private_key,
            algorithm="RS256",
        )
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        answer = await post(
            self._session, "FCM token endpoint", self._account.token_uri, self._timeout, data=form
        )
        body = answer.json()
        token = body.get("access_token")
        if answer.status != 200 or not isinstance(token, str):
            text = body.get("error_description") or body.get("error") or answer.text
            # The account or its key is refused: the message is not at fault.
            raise TransientProviderError(
                f"FCM token endpoint: HTTP {answer.status}: {storable(str(text), MAX_ERROR_CHARS)}",
                status=answer.status,
            )
        expires_in = body.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, int | float) else 3600.0


class FcmProvider:
    def __init__(
        self,
        name: str,
        account: ServiceAccount,
        session: aiohttp.ClientSession,
        *,
        base_url: str = FCM_API,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.token = GoogleAccessToken(account, session, timeout_s)

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        with provider_span(self.name, message, self._url):
            return await self._send(message)

    @staticmethod
    def body(message: ProviderMessage) -> dict[str, Any]:
        notification = {"body": message.content}
        if message.subject:
            notification["title"] = message.subject
        return {
            "message": {
                "token": message.to,
                "notification": notification,
                "data": {"notification_id": str(message.notification_id)},
            }
        }

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        headers = {"Authorization": f"Bearer {await self.token.get()}"}
        answer = await post(
            self._session, self.name, self._url, self._timeout, json=self.body(message), headers=headers
        )
        status, body = answer.status, answer.json()
        if status == 200:
            name = identifier(str(body.get("name") or ""))
            if name is None:
                raise TransientProviderError(f"{self.name}: HTTP 200 without a message name", status=status)
            return ProviderReceipt(self.name, name)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        code = _fcm_error_code(error) or str(error.get("status") or "")
        text = storable(str(error.get("message") or answer.text), MAX_ERROR_CHARS)
        detail = f"{self.name}: HTTP {status}" + (f" {code}" if code else "") + f": {text}"
        if code == "UNREGISTERED":
            raise unregistered_token(self.name, detail, status)
        if status == 401:
            self.token.drop()
            raise TransientProviderError(detail, status=status)
        if code in _PERMANENT or (400 <= status < 500 and status != 429 and status != 403):
            raise PermanentProviderError(detail, status=status)
        raise TransientProviderError(detail, status=status, retry_after_s=answer.retry_after_s)


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    """The FcmError code in the error's details (``UNREGISTERED``, ``QUOTA_EXCEEDED``, ...)."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError"):
            code = detail.get("errorCode")
            if isinstance(code, str):
                return code
    return None
