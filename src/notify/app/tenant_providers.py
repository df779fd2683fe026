"""A tenant's own providers: set and read through the API (``TenantProviders``), used by the worker instead of
the operator's for that tenant's notifications (``TenantRoutes``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from notify.app.delivery import Route
from notify.domain.errors import Forbidden, NotFound
from notify.domain.keys import ApiKey
from notify.domain.model import Channel
from notify.ports.clock import Clock
from notify.ports.tenant_providers import StoredProviders, TenantProviderStore

NOT_ENABLED = (
    "This server does not keep tenants' provider credentials: the operator has not set "
    "NOTIFY_PROVIDER_CREDENTIALS_KEY."
)


def target_tenant(key: ApiKey, tenant_id: str | None) -> str:
    """The tenant a request acts for: the key's own, or another one with an admin key."""
    tenant = tenant_id or key.tenant_id
    if tenant != key.tenant_id and not key.is_admin:
        raise Forbidden("Another tenant's providers need an admin API key.")
    return tenant


class TenantProviders:
    def __init__(self, store: TenantProviderStore | None, clock: Clock) -> None:
        """``store`` None: the feature is off (no encryption key), and every call is a 403."""
        self._store = store
        self._clock = clock

    def _enabled(self) -> TenantProviderStore:
        if self._store is None:
            raise Forbidden(NOT_ENABLED)
        return self._store

    async def set(self, key: ApiKey, tenant_id: str | None, channel: Channel, providers: str) -> str:
        store = self._enabled()
        tenant = target_tenant(key, tenant_id)
        await store.put(tenant, channel, providers, self._clock.now())
        return tenant

    async def of(self, key: ApiKey, tenant_id: str | None) -> tuple[str, dict[Channel, StoredProviders]]:
        tenant = target_tenant(key, tenant_id)
        return tenant, await self._enabled().all(tenant)

    async def remove(self, key: ApiKey, tenant_id: str | None, channel: Channel) -> None:
        tenant = target_tenant(key, tenant_id)
        if not await self._enabled().delete(tenant, channel):
            raise NotFound(f"Tenant {tenant!r} has no {channel.value} providers of its own.")


BuildRoutes = Callable[[str, Channel, str], Sequence[Route]]


class TenantRoutes:
    """The routes of a tenant's own providers for a channel, or None to use the operator's. Read from the
    store at most every ``ttl_s`` per (tenant, channel); the routes (adapters and their breakers) are built
    again only when the tenant's list changed, so a breaker keeps its state across reloads."""

    def __init__(self, store: TenantProviderStore, build: BuildRoutes, clock: Clock, ttl_s: float) -> None:
        self._store = store
        self._build = build
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._loaded: dict[tuple[str, Channel], tuple[datetime, Sequence[Route] | None]] = {}
        self._built: dict[tuple[str, Channel, str], Sequence[Route]] = {}

    async def routes(self, tenant_id: str, channel: Channel) -> Sequence[Route] | None:
        now = self._clock.now()
        cached = self._loaded.get((tenant_id, channel))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        stored = await self._store.get(tenant_id, channel)
        routes = None
        if stored is not None:
            key = (tenant_id, channel, stored.providers)
            if key not in self._built:
                self._built[key] = self._build(tenant_id, channel, stored.providers)
            routes = self._built[key]
        self._loaded[(tenant_id, channel)] = (now, routes)
        return routes
