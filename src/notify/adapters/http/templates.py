"""Template handlers (POST/GET /api/v1/templates, GET/PUT/DELETE /api/v1/templates/{id}; routed in
``routes.py``).

Handlers raise domain errors; ``errors.error_middleware`` turns them into the one error shape.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from notify.adapters.http.auth import tenant_of
from notify.adapters.http.contract import LOCATION, Reply
from notify.adapters.http.inputs import body, query
from notify.adapters.http.responses import TemplateOut, TemplatePageOut
from notify.adapters.http.schemas import Cursor, decode_cursor
from notify.adapters.http.state import TEMPLATES
from notify.app.templates import TemplateService
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import MAX_TEMPLATE_NAME_CHARS


class TemplateIn(BaseModel):
    """Body of POST /templates and PUT /templates/{id} (a PUT replaces every field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=MAX_TEMPLATE_NAME_CHARS)
    channel: Channel
    body: str
    subject: str | None = None


class TemplateListParams(BaseModel):
    """Query parameters of GET /templates (strings from the URL, so lax parsing)."""

    model_config = ConfigDict(extra="forbid")

    cursor: Cursor | None = None
    page_size: int = Field(default=20, ge=1, le=100)


def _template_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a template id (UUID)", "invalid_id")]
        ) from None


def _service(request: web.Request) -> TemplateService:
    return request.config_dict[TEMPLATES]


async def create_template(request: web.Request) -> Reply:
    payload = body(request, TemplateIn)
    template = await _service(request).create(
        tenant_of(request), payload.name, payload.channel, payload.body, payload.subject
    )
    return Reply(TemplateOut.of(template), 201, {LOCATION: f"/api/v1/templates/{template.id}"})


async def list_templates(request: web.Request) -> Reply:
    params = query(request, TemplateListParams)
    after_id = decode_cursor(params.cursor) if params.cursor else None
    items, next_after = await _service(request).search(tenant_of(request), after_id, params.page_size)
    return Reply(TemplatePageOut.of(items, next_after))


async def get_template(request: web.Request) -> Reply:
    template = await _service(request).get(tenant_of(request), _template_id(request))
    return Reply(TemplateOut.of(template))


async def replace_template(request: web.Request) -> Reply:
    template_id = _template_id(request)
    payload = body(request, TemplateIn)
    template = await _service(request).update(
        tenant_of(request), template_id, payload.name, payload.channel, payload.body, payload.subject
    )
    return Reply(TemplateOut.of(template))


async def delete_template(request: web.Request) -> Reply:
    await _service(request).delete(tenant_of(request), _template_id(request))
    return Reply(None, 204)
