"""API keys: creating, revoking, and turning a presented key into the tenant it acts for."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import datetime, timedelta
from uuid import UUID

from notify.domain.errors import NotFound, Unauthorized
from notify.domain.ids import uuid7_at
from notify.domain.keys import ApiKey, KeyScope, hash_secret, looks_like_key, new_secret
from notify.ports.clock import Clock
from notify.ports.keys import ApiKeyStore


class KeyService:
    def __init__(self, store: ApiKeyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        name: str,
        tenant_id: str,
        rate_limit_per_s: float | None = None,
        scope: KeyScope = KeyScope.TENANT,
    ) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and never stored."""
        secret = new_secret()
        now = self._clock.now()
        key = ApiKey(
            uuid7_at(now),
            tenant_id,
            name,
            secret[:12],
            hash_secret(secret),
            now,
            rate_limit_per_s,
            scope=scope,
        )
        await self._store.add(key)
        return key, secret

    async def revoke(self, key_id: UUID) -> None:
        if not await self._store.revoke(key_id, self._clock.now()):
            raise NotFound(f"No active API key {key_id}.")

    async def all(self, tenant_id: str | None = None) -> list[ApiKey]:
        return await self._store.all(tenant_id)


LIVE_TOKEN_PREFIX = "ntl_"
LIVE_TOKEN_TTL = timedelta(seconds=60)


class _Lru:
    """At most ``size`` entries, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[ApiKey | None, datetime]] = OrderedDict()

    def get(self, digest: str) -> tuple[ApiKey | None, datetime] | None:
        found = self._items.get(digest)
        if found is not None:
            self._items.move_to_end(digest)
        return found

    def put(self, digest: str, entry: tuple[ApiKey | None, datetime]) -> None:
        self._items[digest] = entry
        self._items.move_to_end(digest)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Authenticator:
    """Resolves ``Authorization: Bearer <key>``. Lookups are cached for ``cache_ttl_s`` so a request costs no
    query; a revocation therefore takes effect within that time.

    Keys that exist and keys that do not are cached apart, each bounded (least recently used dropped
    first): a flood of made-up keys only ever evicts other made-up keys, never a real one, and a value
    that is not even shaped like a key is refused without a query."""

    def __init__(
        self,
        store: ApiKeyStore,
        clock: Clock,
        *,
        cache_ttl_s: float = 5.0,
        known_size: int = 10_000,
        unknown_size: int = 10_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=cache_ttl_s)
        self._known = _Lru(known_size)
        self._unknown = _Lru(unknown_size)

    async def authenticate(self, authorization: str | None) -> ApiKey:
        scheme, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        if not looks_like_key(secret):
            raise Unauthorized("The API key is unknown or revoked.")
        key = await self.by_hash(hash_secret(secret))
        if key is None or not key.active:
            raise Unauthorized("The API key is unknown or revoked.")
        return key

    async def by_hash(self, digest: str) -> ApiKey | None:
        """The key with this digest as of at most ``cache_ttl_s`` ago (revoked ones included)."""
        now = self._clock.now()
        for cache in (self._known, self._unknown):
            cached = cache.get(digest)
            if cached is not None and now - cached[1] < self._ttl:
                return cached[0]
        key = await self._store.find_by_hash(digest)
        (self._known if key is not None else self._unknown).put(digest, (key, now))
        return key

    async def issue_live_token(self, key: ApiKey) -> tuple[str, datetime]:
        """A single-use token standing for ``key`` on the WebSocket for ``LIVE_TOKEN_TTL``."""
        token = LIVE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = self._clock.now() + LIVE_TOKEN_TTL
        await self._store.add_live_token(hash_secret(token), key.id, expires_at)
        return token, expires_at

    async def use_live_token(self, token: str) -> ApiKey:
        key = None
        if token.startswith(LIVE_TOKEN_PREFIX) and len(token) < 100:
            key = await self._store.use_live_token(hash_secret(token), self._clock.now())
        if key is None or not key.active:
            raise Unauthorized(
                "The token is unknown, used or expired: get a new one (POST /api/v1/live/tokens)."
            )
        return key

    async def still_valid(self, key: ApiKey) -> bool:
        """Whether ``key`` is still active (a revocation shows within ``cache_ttl_s``)."""
        current = await self.by_hash(key.key_hash)
        return current is not None and current.active
