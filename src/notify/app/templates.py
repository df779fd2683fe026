"""Create, read, list, replace and delete a tenant's templates, and render one for a notification.

A notification stores what its template rendered to at acceptance, so changing or deleting a template later
never changes or breaks notifications already accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from notify.domain.errors import FieldError, NotFound, ValidationFailed
from notify.domain.ids import uuid7_at
from notify.domain.model import Channel
from notify.domain.templates import Template, check_template_name
from notify.ports.clock import Clock
from notify.ports.templates import TemplateEngine, TemplateStore

MAX_PAGE_SIZE = 100


def _not_found(template_id: UUID) -> NotFound:
    return NotFound(f"There is no template {template_id}.")


class TemplateService:
    def __init__(self, store: TemplateStore, clock: Clock, engine: TemplateEngine) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine

    async def _check(self, name: str, channel: Channel, body: str, subject: str | None) -> None:
        errors: list[FieldError] = []
        err = check_template_name(name)
        if err:
            errors.append(err)
        errors.extend(await self._engine.check(channel, body, subject))
        if errors:
            raise ValidationFailed.for_fields(errors)

    async def create(
        self, tenant_id: str, name: str, channel: Channel, body: str, subject: str | None = None
    ) -> Template:
        await self._check(name, channel, body, subject)
        now = self._clock.now()
        template = Template(
            id=uuid7_at(now),
            tenant_id=tenant_id,
            name=name,
            channel=channel,
            body=body,
            subject=subject,
            created_at=now,
            updated_at=now,
        )
        await self._store.create(template)
        return template

    async def get(self, tenant_id: str, template_id: UUID) -> Template:
        template = await self._store.get(tenant_id, template_id)
        if template is None:
            raise _not_found(template_id)
        return template

    async def search(
        self, tenant_id: str, after_id: UUID | None = None, page_size: int = 20
    ) -> tuple[list[Template], UUID | None]:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationFailed.for_fields(
                [FieldError("page_size", f"must be 1 to {MAX_PAGE_SIZE}", "out_of_range")]
            )
        return await self._store.search(tenant_id, after_id, page_size)

    async def update(
        self,
        tenant_id: str,
        template_id: UUID,
        name: str,
        channel: Channel,
        body: str,
        subject: str | None = None,
    ) -> Template:
        """Replaces name, channel, body and subject (a PUT): an omitted subject is removed."""
        await self._check(name, channel, body, subject)
        current = await self.get(tenant_id, template_id)
        changed = dataclasses.replace(
            current, name=name, channel=channel, body=body, subject=subject, updated_at=self._clock.now()
        )
        stored = await self._store.update(changed)
        if stored is None:  # deleted since we read it
            raise _not_found(template_id)
        return stored

    async def delete(self, tenant_id: str, template_id: UUID) -> None:
        if not await self._store.delete(tenant_id, template_id):
            raise _not_found(template_id)

    async def preview(
        self,
        tenant_id: str,
        channel: Channel,
        body: str,
        subject: str | None,
        variables: Mapping[str, Any],
    ) -> tuple[str, str | None]:
        """What a template not yet saved renders to with ``variables``; the same ValidationFailed as saving it
        (syntax) or sending with it (a missing variable, too expensive) would raise."""
        errors = await self._engine.check(channel, body, subject)
        if errors:
            raise ValidationFailed.for_fields(errors)
        now = self._clock.now()
        draft = Template(uuid7_at(now), tenant_id, "preview", channel, body, subject, now, now)
        return await self._engine.render(draft, variables)

    async def render_for(
        self,
        tenant_id: str,
        template_id: UUID,
        channel: Channel,
        variables: Mapping[str, Any],
        prefix: str = "",
    ) -> tuple[str, str | None]:
        """(content, subject) of a notification on ``channel`` built from the template. Every failure is a
        ValidationFailed on the notification's fields (``prefix`` is e.g. ``notifications[7].``): an unknown
        template id is bad input inside the notification, not a missing resource."""
        template = await self._store.get(tenant_id, template_id)
        if template is None:
            raise ValidationFailed.for_fields(
                [FieldError(prefix + "template_id", "no such template", "unknown_template")]
            )
        if template.channel is not channel:
            raise ValidationFailed.for_fields(
                [
                    FieldError(
                        prefix + "template_id",
                        f"template is for {template.channel.value}, notification is {channel.value}",
                        "channel_mismatch",
                    )
                ]
            )
        return await self._engine.render(template, variables, prefix)
