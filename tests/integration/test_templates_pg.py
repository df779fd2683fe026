"""PgTemplateStore and TemplateService against a real PostgreSQL (a fresh migrated database per test)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest

from notify.adapters.postgres.store import PgNotificationStore
from notify.adapters.postgres.templates import PgTemplateStore
from notify.adapters.templates.inline import InlineTemplateEngine
from notify.app.notifications import NewNotification, NotificationService
from notify.app.templates import TemplateService
from notify.domain.errors import Conflict, NotFound, ValidationFailed
from notify.domain.model import Channel
from tests.fakes import FakeClock

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(pool: asyncpg.Pool) -> PgTemplateStore:
    return PgTemplateStore(pool)


@pytest.fixture
def service(store: PgTemplateStore, clock: FakeClock) -> TemplateService:
    return TemplateService(store, clock, InlineTemplateEngine())


async def test_create_and_get_round_trip(service: TemplateService) -> None:
    created = await service.create("t1", "welcome", Channel.EMAIL, "Hi {{ name }}", "Welcome {{ name }}")
    assert created.created_at == created.updated_at == T0
    assert await service.get("t1", created.id) == created


async def test_names_are_unique_per_tenant(service: TemplateService) -> None:
    await service.create("t1", "welcome", Channel.SMS, "Hi")
    with pytest.raises(Conflict) as caught:
        await service.create("t1", "welcome", Channel.PUSH, "Hello")
    assert "welcome" in caught.value.message
    assert [d.field for d in caught.value.details] == ["name"]
    other = await service.create("t2", "welcome", Channel.SMS, "Hi")  # another tenant may reuse the name
    assert other.tenant_id == "t2"


async def test_a_template_is_invisible_to_other_tenants(service: TemplateService) -> None:
    created = await service.create("t1", "welcome", Channel.SMS, "Hi")
    with pytest.raises(NotFound):
        await service.get("t2", created.id)
    with pytest.raises(NotFound):
        await service.update("t2", created.id, "x", Channel.SMS, "Hi")
    with pytest.raises(NotFound):
        await service.delete("t2", created.id)
    assert (await service.search("t2")) == ([], None)


async def test_invalid_templates_are_rejected_before_storing(service: TemplateService) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await service.create("t1", "", Channel.SMS, "Hi\n{{ name", "Subject")
    assert [(d.field, d.code) for d in caught.value.details] == [
        ("name", "invalid_name"),
        ("body", "template_syntax"),
        ("subject", "not_allowed"),
    ]
    assert (await service.search("t1")) == ([], None)


async def test_search_pages_newest_first(service: TemplateService, clock: FakeClock) -> None:
    ids = []
    for i in range(5):
        ids.append((await service.create("t1", f"n{i}", Channel.SMS, "Hi")).id)
        clock.advance(1)
    await service.create("t2", "other", Channel.SMS, "Hi")
    first, after = await service.search("t1", page_size=2)
    assert [t.id for t in first] == ids[::-1][:2]
    assert after == first[-1].id
    second, after = await service.search("t1", after, 2)
    third, last = await service.search("t1", after, 2)
    assert [t.id for t in second + third] == ids[::-1][2:]
    assert last is None
    with pytest.raises(ValidationFailed):
        await service.search("t1", page_size=101)


async def test_update_replaces_every_field(service: TemplateService, clock: FakeClock) -> None:
    created = await service.create("t1", "welcome", Channel.EMAIL, "Hi", "Subject")
    clock.advance(5)
    updated = await service.update("t1", created.id, "hello", Channel.SMS, "Hello {{ name }}")
    assert (updated.name, updated.channel, updated.body, updated.subject) == (
        "hello",
        Channel.SMS,
        "Hello {{ name }}",
        None,
    )
    assert updated.created_at == T0
    assert updated.updated_at > updated.created_at
    assert await service.get("t1", created.id) == updated


async def test_update_to_a_taken_name_is_a_conflict(service: TemplateService) -> None:
    await service.create("t1", "a", Channel.SMS, "Hi")
    b = await service.create("t1", "b", Channel.SMS, "Hi")
    with pytest.raises(Conflict):
        await service.update("t1", b.id, "a", Channel.SMS, "Hi")
    with pytest.raises(NotFound):
        await service.update("t1", uuid4(), "c", Channel.SMS, "Hi")


async def test_delete(service: TemplateService, store: PgTemplateStore) -> None:
    created = await service.create("t1", "welcome", Channel.SMS, "Hi")
    await service.delete("t1", created.id)
    assert await store.get("t1", created.id) is None
    with pytest.raises(NotFound):
        await service.delete("t1", created.id)
    again = await service.create("t1", "welcome", Channel.SMS, "Hi")  # the name is free again
    assert again.id != created.id


async def test_render_for(service: TemplateService) -> None:
    sms = await service.create("t1", "code", Channel.SMS, "Your code is {{ code }}")
    assert await service.render_for("t1", sms.id, Channel.SMS, {"code": "1234"}) == (
        "Your code is 1234",
        None,
    )
    email = await service.create("t1", "mail", Channel.EMAIL, "Dear {{ name }}", "Hello {{ name }}")
    assert await service.render_for("t1", email.id, Channel.EMAIL, {"name": "Ann"}) == (
        "Dear Ann",
        "Hello Ann",
    )


async def test_render_for_an_unknown_template_is_bad_input(service: TemplateService) -> None:
    created = await service.create("t1", "code", Channel.SMS, "Hi")
    for tenant, template_id in (("t1", uuid4()), ("t2", created.id)):
        with pytest.raises(ValidationFailed) as caught:
            await service.render_for(tenant, template_id, Channel.SMS, {}, "notifications[2].")
        [detail] = caught.value.details
        assert (detail.field, detail.code) == ("notifications[2].template_id", "unknown_template")


async def test_render_for_another_channel_is_a_mismatch(service: TemplateService) -> None:
    created = await service.create("t1", "code", Channel.SMS, "Hi")
    with pytest.raises(ValidationFailed) as caught:
        await service.render_for("t1", created.id, Channel.PUSH, {})
    [detail] = caught.value.details
    assert (detail.field, detail.code) == ("template_id", "channel_mismatch")
    assert detail.message == "template is for sms, notification is push"


async def test_render_for_names_a_missing_variable(service: TemplateService) -> None:
    created = await service.create("t1", "code", Channel.SMS, "Code {{ code }}")
    with pytest.raises(ValidationFailed) as caught:
        await service.render_for("t1", created.id, Channel.SMS, {})
    assert [(d.field, d.message) for d in caught.value.details] == [
        ("template_variables", "missing variable 'code'")
    ]


async def test_notifications_outlive_changes_to_their_template(
    service: TemplateService, pool: asyncpg.Pool, clock: FakeClock
) -> None:
    template = await service.create("t1", "code", Channel.SMS, "Code {{ code }}")
    notifications = NotificationService(PgNotificationStore(pool), clock, render=service.render_for)
    new = NewNotification(
        channel=Channel.SMS,
        recipient="+14155550123",
        template_id=template.id,
        template_variables={"code": "42"},
    )
    accepted = await notifications.create("t1", new)
    assert accepted.content == "Code 42"

    await service.update("t1", template.id, "code", Channel.SMS, "Changed {{ other }}")
    assert (await notifications.get("t1", accepted.id)).content == "Code 42"
    await service.delete("t1", template.id)
    kept = await notifications.get("t1", accepted.id)
    assert (kept.content, kept.template_id, kept.template_variables) == (
        "Code 42",
        template.id,
        {"code": "42"},
    )
