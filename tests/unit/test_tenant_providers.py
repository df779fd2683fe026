"""A tenant's own providers: who may set them, and how the worker picks them (hand-written fakes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from notify.app.delivery import Deliverer, DeliveryOutcome, Route
from notify.app.notifications import NewNotification, NotificationService
from notify.app.tenant_providers import TenantProviders, TenantRoutes
from notify.domain.errors import Forbidden, NotFound
from notify.domain.keys import ApiKey, KeyScope
from notify.domain.model import Channel
from tests.fakes import FakeBreaker, FakeClock, FakeProvider, FakeStore, FakeTenantProviderStore


def key(tenant: str, admin: bool = False) -> ApiKey:
    return ApiKey(
        id=uuid4(),
        tenant_id=tenant,
        name=tenant,
        prefix="ntf_x",
        key_hash="h",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        scope=KeyScope.ADMIN if admin else KeyScope.TENANT,
    )


async def test_a_tenant_sets_reads_and_drops_its_own_providers_only() -> None:
    store, clock = FakeTenantProviderStore(), FakeClock()
    service = TenantProviders(store, clock)
    assert await service.set(key("a"), None, Channel.SMS, "[1]") == "a"
    tenant, stored = await service.of(key("a"), None)
    assert (tenant, list(stored), stored[Channel.SMS].providers) == ("a", [Channel.SMS], "[1]")
    with pytest.raises(Forbidden):
        await service.set(key("b"), "a", Channel.SMS, "[2]")  # another tenant's: admin only
    with pytest.raises(Forbidden):
        await service.of(key("b"), "a")
    assert await service.set(key("ops", admin=True), "a", Channel.EMAIL, "[3]") == "a"
    await service.remove(key("a"), None, Channel.SMS)
    with pytest.raises(NotFound):
        await service.remove(key("a"), None, Channel.SMS)
    assert list((await service.of(key("a"), None))[1]) == [Channel.EMAIL]


async def test_without_a_credentials_key_every_call_is_refused() -> None:
    service = TenantProviders(None, FakeClock())
    with pytest.raises(Forbidden, match="NOTIFY_PROVIDER_CREDENTIALS_KEY"):
        await service.set(key("a"), None, Channel.SMS, "[]")
    with pytest.raises(Forbidden, match="NOTIFY_PROVIDER_CREDENTIALS_KEY"):
        await service.of(key("a"), None)


class Builder:
    def __init__(self) -> None:
        self.built: list[tuple[str, Channel, str]] = []
        self.providers: dict[str, FakeProvider] = {}

    def __call__(self, tenant: str, channel: Channel, providers: str) -> Sequence[Route]:
        self.built.append((tenant, channel, providers))
        provider = self.providers.setdefault(tenant, FakeProvider(f"{tenant}-own"))
        return [Route(provider, FakeBreaker(provider.name))]


async def test_routes_are_read_at_most_every_ttl_and_built_again_only_when_the_list_changes() -> None:
    store, clock, build = FakeTenantProviderStore(), FakeClock(), Builder()
    routes = TenantRoutes(store, build, clock, ttl_s=5)
    assert await routes.routes("a", Channel.SMS) is None  # none of its own: the operator's
    await store.put("a", Channel.SMS, "[1]", clock.now())
    assert await routes.routes("a", Channel.SMS) is None  # still cached
    clock.advance(5)
    first = await routes.routes("a", Channel.SMS)
    assert first is not None and build.built == [("a", Channel.SMS, "[1]")]
    clock.advance(5)
    assert await routes.routes("a", Channel.SMS) is first  # re-read, unchanged: the same routes and breakers
    await store.put("a", Channel.SMS, "[2]", clock.now())
    clock.advance(5)
    assert await routes.routes("a", Channel.SMS) is not first
    assert len(build.built) == 2 and store.reads == 4


async def test_a_tenants_notification_goes_through_its_own_providers_and_others_through_the_operators() -> (
    None
):
    store, clock, tenant_store, build = FakeStore(), FakeClock(), FakeTenantProviderStore(), Builder()
    await tenant_store.put("a", Channel.SMS, "[own]", clock.now())
    operator = FakeProvider("operator")
    deliverer = Deliverer(
        store,
        {c: [Route(operator, FakeBreaker("operator"))] for c in Channel},
        clock,
        worker_id="w",
        lease=timedelta(seconds=30),
        tenant_routes=TenantRoutes(tenant_store, build, clock, ttl_s=5),
    )
    notifications = NotificationService(store, clock)
    sms = NewNotification(channel=Channel.SMS, recipient="+14155550123", content="hi")
    mine, theirs = await notifications.create("a", sms), await notifications.create("b", sms)
    assert await deliverer.deliver(mine.id) is DeliveryOutcome.DELIVERED
    assert await deliverer.deliver(theirs.id) is DeliveryOutcome.DELIVERED
    assert [m.notification_id for m in build.providers["a"].sent] == [mine.id]
    assert [m.notification_id for m in operator.sent] == [theirs.id]
    assert store.rows[mine.id].provider == "a-own"
