"""API keys: creating, revoking, and turning a presented key into the tenant it acts for."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from notify.domain.errors import NotFound, Unauthorized
from notify.domain.ids import uuid7_at
from notify.domain.keys import ApiKey, KeyScope, hash_secret, new_secret
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


class Authenticator:
    """Resolves ``Authorization: Bearer <key>``. Lookups are cached for ``cache_ttl_s`` so a request costs no
    query; a revocation therefore takes effect within that time."""

    def __init__(self, store: ApiKeyStore, clock: Clock, *, cache_ttl_s: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=cache_ttl_s)
        self._cache: dict[str, tuple[ApiKey | None, datetime]] = {}

    async def authenticate(self, authorization: str | None) -> ApiKey:
        scheme, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        digest = hash_secret(secret)
        now = self._clock.now()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self._ttl:
            key = cached[0]
        else:
            key = await self._store.find_by_hash(digest)
            if len(self._cache) > 10_000:  # bounded: unknown keys must not grow it without limit
                self._cache.clear()
            self._cache[digest] = (key, now)
        if key is None or not key.active:
            raise Unauthorized("The API key is unknown or revoked.")
        return key
