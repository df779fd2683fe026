"""A tenant's own providers in PostgreSQL, encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from
``cryptography``) under a key the database never sees: a database dump holds no provider secret."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from cryptography.fernet import Fernet

from notify.domain.model import Channel
from notify.ports.tenant_providers import StoredProviders


class PgTenantProviders:
    def __init__(self, pool: asyncpg.Pool, fernet: Fernet) -> None:
        self._pool = pool
        self._fernet = fernet

    def _open(self, row: asyncpg.Record) -> StoredProviders:
        return StoredProviders(self._fernet.decrypt(bytes(row["providers"])).decode(), row["updated_at"])

    async def put(self, tenant_id: str, channel: Channel, providers: str, now: datetime) -> None:
        await self._pool.execute(
            """INSERT INTO tenant_providers (tenant_id, channel, providers, updated_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (tenant_id, channel) DO UPDATE SET providers = $3, updated_at = $4""",
            tenant_id,
            channel.value,
            self._fernet.encrypt(providers.encode()),
            now,
        )

    async def get(self, tenant_id: str, channel: Channel) -> StoredProviders | None:
        row = await self._pool.fetchrow(
            "SELECT providers, updated_at FROM tenant_providers WHERE tenant_id = $1 AND channel = $2",
            tenant_id,
            channel.value,
        )
        return None if row is None else self._open(row)

    async def all(self, tenant_id: str) -> dict[Channel, StoredProviders]:
        rows = await self._pool.fetch(
            "SELECT channel, providers, updated_at FROM tenant_providers WHERE tenant_id = $1", tenant_id
        )
        return {Channel(r["channel"]): self._open(r) for r in rows}

    async def delete(self, tenant_id: str, channel: Channel) -> bool:
        status: str = await self._pool.execute(
            "DELETE FROM tenant_providers WHERE tenant_id = $1 AND channel = $2", tenant_id, channel.value
        )
        return status != "DELETE 0"
