from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from notify.domain.keys import ApiKey, KeyScope

_COLUMNS = "id, tenant_id, name, prefix, key_hash, created_at, rate_limit_per_s, revoked_at, scope"


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        created_at=row["created_at"],
        rate_limit_per_s=row["rate_limit_per_s"],
        revoked_at=row["revoked_at"],
        scope=KeyScope(row["scope"]),
    )


class PgApiKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, key: ApiKey) -> None:
        await self._pool.execute(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            key.id,
            key.tenant_id,
            key.name,
            key.prefix,
            key.key_hash,
            key.created_at,
            key.rate_limit_per_s,
            key.revoked_at,
            key.scope.value,
        )

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash)
        return _key(row) if row else None

    async def revoke(self, key_id: UUID, now: datetime) -> bool:
        status = await self._pool.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", key_id, now
        )
        return str(status).endswith(" 1")

    async def add_live_token(self, token_hash: str, key_id: UUID, expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO live_tokens (token_hash, key_id, expires_at) VALUES ($1, $2, $3)",
            token_hash,
            key_id,
            expires_at,
        )

    async def use_live_token(self, token_hash: str, now: datetime) -> ApiKey | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM live_tokens WHERE expires_at < $1::timestamptz - interval '1 hour'", now
            )
            row = await conn.fetchrow(
                f"""WITH used AS (
                        UPDATE live_tokens SET used_at = $2
                         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                     RETURNING key_id)
                    SELECT {", ".join("k." + c.strip() for c in _COLUMNS.split(","))}
                      FROM api_keys k JOIN used ON used.key_id = k.id""",
                token_hash,
                now,
            )
        return _key(row) if row else None

    async def all(self, tenant_id: str | None = None) -> list[ApiKey]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY created_at",
            tenant_id,
        )
        return [_key(r) for r in rows]
