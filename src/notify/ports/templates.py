from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from notify.domain.errors import FieldError
from notify.domain.model import Channel
from notify.domain.templates import Template


class TemplateEngine(Protocol):
    """Checks and renders templates, which are untrusted code: bounded in time and memory."""

    async def check(self, channel: Channel, body: str, subject: str | None) -> list[FieldError]:
        """Everything wrong with a template's source (``body``, ``subject`` fields); renders nothing."""
        ...

    async def render(
        self, template: Template, variables: Mapping[str, Any], prefix: str = ""
    ) -> tuple[str, str | None]:
        """(content, subject); raises ValidationFailed naming the failing fields (``prefix``ed), a missing
        variable, or a template too expensive to render."""
        ...


class TemplateStore(Protocol):
    """A tenant's templates. Every method is scoped by tenant: another tenant's template does not exist."""

    async def create(self, template: Template) -> None:
        """Raises Conflict if the tenant already has a template with this name."""
        ...

    async def get(self, tenant_id: str, template_id: UUID) -> Template | None: ...

    async def search(
        self, tenant_id: str, after_id: UUID | None, page_size: int
    ) -> tuple[list[Template], UUID | None]:
        """One page, newest first, after ``after_id``; and the id to continue after (None: last page)."""
        ...

    async def update(self, template: Template) -> Template | None:
        """Replaces name, channel, body, subject and updated_at; returns the stored template, None if there is
        no such template. Raises Conflict if the new name is taken."""
        ...

    async def delete(self, tenant_id: str, template_id: UUID) -> bool:
        """False if there was no such template."""
        ...
