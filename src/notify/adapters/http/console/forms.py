"""What the console's pages accept in their query strings and forms. HTML forms send an empty string for a
field left at "any": it is read as absent."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notify.adapters.http.errors import from_pydantic
from notify.domain.keys import KeyScope
from notify.domain.model import Channel, Priority, Status

M = TypeVar("M", bound=BaseModel)

MAX_FORM_BYTES = 256 * 1024  # a template's source is the largest thing a console form carries


def _present(items: Any) -> dict[str, Any]:
    return {k: v for k, v in items if isinstance(v, str) and v.strip() != ""}


def query_of(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(_present(request.query.items()))
    except ValidationError as exc:
        raise from_pydantic(exc) from None


async def form_of(request: web.Request, model: type[M], *, lists: tuple[str, ...] = ()) -> M:
    """The posted form, read once (cached by aiohttp) and bounded; fields named in ``lists`` may repeat."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
    posted = await request.post()
    data: dict[str, Any] = _present((k, v) for k, v in posted.items() if k not in lists)
    for name in lists:
        data[name] = [v for v in posted.getall(name, []) if isinstance(v, str) and v]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic(exc) from None


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a page's other controls (csrf, submit buttons) ride along


class TenantView(_Lax):
    tenant: str | None = Field(None, max_length=200)


class ActivityFilter(TenantView):
    channel: Channel | None = None
    status: Status | None = None
    priority: Priority | None = None
    batch: UUID | None = None


class Within(StrEnum):
    """How far back a dead-letter filter looks (on the time each one failed)."""

    QUARTER_HOUR = "15m"
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def span(self) -> timedelta:
        return {
            "15m": timedelta(minutes=15),
            "1h": timedelta(hours=1),
            "24h": timedelta(hours=24),
            "7d": timedelta(days=7),
        }[self.value]


class DeadLetterFilter(TenantView):
    channel: Channel | None = None
    provider: str | None = Field(None, max_length=200)
    error: str | None = Field(None, max_length=500)
    within: Within | None = None


class DeadLetterReplay(DeadLetterFilter):
    ids: list[str] = Field(default_factory=list, max_length=500)  # "<tenant>:<notification id>"
    every: bool = False  # the whole filter, not a selection


class PauseForm(TenantView):
    action: str = Field(pattern="^(pause|resume)$")
    channel: Channel | None = None  # None: every channel


class TemplateForm(TenantView):
    name: str = Field(max_length=200)
    channel: Channel
    subject: str | None = Field(None, max_length=10_000)
    body: str = Field(max_length=MAX_FORM_BYTES)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    subject: str | None = Field(None, max_length=10_000)
    body: str = Field(max_length=MAX_FORM_BYTES)
    variables: dict[str, Any] = Field(default_factory=dict)


class KeyForm(_Lax):
    name: str = Field(min_length=1, max_length=200)
    tenant_id: str = Field(min_length=1, max_length=200)
    scope: KeyScope = KeyScope.TENANT
    rate_limit_per_s: float | None = Field(None, gt=0)


class SignInForm(_Lax):
    key: str = Field(max_length=200)
    next: str | None = Field(None, max_length=2000)
