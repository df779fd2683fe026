"""The TemplateEngine port run in this process: for tests and tools, never for the API (see isolated.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notify.adapters.templates.jinja import check_template_source, render
from notify.domain.errors import FieldError
from notify.domain.model import Channel
from notify.domain.templates import Template


class InlineTemplateEngine:
    async def check(self, channel: Channel, body: str, subject: str | None) -> list[FieldError]:
        return check_template_source(channel, body, subject)

    async def render(
        self, template: Template, variables: Mapping[str, Any], prefix: str = ""
    ) -> tuple[str, str | None]:
        return render(template, variables, prefix)
