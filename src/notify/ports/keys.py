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
