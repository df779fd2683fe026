from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notify.domain.model import Channel


@dataclass(frozen=True, slots=True)
class StoredProviders:
    providers: str  # the JSON list of provider entries, in clear (stored encrypted)
    updated_at: datetime


class TenantProviderStore(Protocol):
    """A tenant's own providers per channel (``app.tenant_providers``); kept encrypted at rest."""

    async def put(self, tenant_id: str, channel: Channel, providers: str, now: datetime) -> None: ...

    async def get(self, tenant_id: str, channel: Channel) -> StoredProviders | None: ...

    async def all(self, tenant_id: str) -> dict[Channel, StoredProviders]: ...

    async def delete(self, tenant_id: str, channel: Channel) -> bool:
        """False when the tenant had no providers of its own for ``channel``."""
        ...
