"""API keys: what a caller presents, and the tenant it acts for. Keys are stored only as a SHA-256 digest:
they carry 256 random bits, so a fast hash is enough (no dictionary to guess from)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

KEY_PREFIX = "ntf_"


class KeyScope(StrEnum):
    """What a key may do. ``tenant``: act for its tenant only (the default). ``admin``: an operator's key,
    which may also act beyond its tenant (the global delivery switch, another tenant's pause)."""

    TENANT = "tenant"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    tenant_id: str
    name: str
    prefix: str  # the first characters of the key, safe to show in listings
    key_hash: str
    created_at: datetime
    rate_limit_per_s: float | None = None  # None: the server's default
    revoked_at: datetime | None = None
    scope: KeyScope = KeyScope.TENANT

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_admin(self) -> bool:
        return self.scope is KeyScope.ADMIN


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


_KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9_-]{{43}}$")


def looks_like_key(secret: str) -> bool:
    """Whether ``secret`` has the shape of a key this server makes (no lookup needed to refuse one that
    does not)."""
    return _KEY_SHAPE.match(secret) is not None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
