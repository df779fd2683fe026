"""The console's session: a signed, HttpOnly, SameSite=Strict cookie naming the API key signed in with.

The cookie holds the key's SHA-256 digest (never the key), a CSRF token and the time it was issued, signed
with ``NOTIFY_CONSOLE_SECRET`` (itsdangerous). Every request looks the key up again (cached like the API's),
so a revoked key ends its sessions within ``NOTIFY_API_KEY_CACHE_S``. Forms that change something carry the
CSRF token (a hidden field, or the ``X-CSRF-Token`` header from the page's script); SameSite=Strict already
keeps the cookie off requests from other sites, the token is the second lock.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from notify.domain.keys import ApiKey

COOKIE = "notify_console"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Session:
    key: ApiKey
    csrf: str


class SessionCookies:
    def __init__(self, secret: str | None, max_age_s: float) -> None:
        self._signer = URLSafeTimedSerializer(secret or secrets.token_urlsafe(32), salt="notify-console")
        self._max_age_s = max_age_s

    def issue(self, response: web.StreamResponse, request: web.Request, key: ApiKey) -> None:
        value = self._signer.dumps({"k": key.key_hash, "c": secrets.token_urlsafe(24)})
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(self._max_age_s),
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )

    def clear(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path=COOKIE_PATH)

    def read(self, request: web.Request) -> tuple[str, str] | None:
        """(key digest, CSRF token) of a valid, unexpired cookie; None otherwise."""
        value = request.cookies.get(COOKIE)
        if not value or len(value) > 4096:
            return None
        try:
            data = self._signer.loads(value, max_age=int(self._max_age_s))
        except BadSignature:  # also SignatureExpired
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("k"), str)
            or not isinstance(data.get("c"), str)
        ):
            return None
        return data["k"], data["c"]


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())


def same_origin(request: web.Request) -> bool:
    """A state-changing request must come from our own pages: an Origin header, when the browser sends one,
    names this host."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.host
