from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from notify.domain.keys import ApiKey


class ApiKeyStore(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def find_by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def revoke(self, key_id: UUID, now: datetime) -> bool:
        """False if there is no such active key."""
        ...

    async def all(self, tenant_id: str | None = None) -> list[ApiKey]: ...

    async def add_live_token(self, token_hash: str, key_id: UUID, expires_at: datetime) -> None: ...

    async def use_live_token(self, token_hash: str, now: datetime) -> ApiKey | None:
        """The key a token was issued for, if the token exists, has not expired and was not used before; the
        token is used up by this call (once only, however many callers race). Expired tokens are purged."""
        ...
