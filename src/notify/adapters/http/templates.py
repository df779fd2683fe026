"""Template handlers (POST/GET /api/v1/templates, GET/PUT/DELETE /api/v1/templates/{id}; routed in
``routes.py``).

Handlers raise domain errors; ``errors.error_middleware`` turns them into the one error shape.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from notify.adapters.http.auth import tenant_of
from notify.adapters.http.inputs import json_body, query_params
from notify.adapters.http.jsonio import json_response
from notify.adapters.http.schemas import Cursor, decode_cursor, encode_cursor, rfc3339
from notify.adapters.http.state import TEMPLATES
from notify.app.templates import TemplateService
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import MAX_TEMPLATE_NAME_CHARS, Template


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


def template_json(t: Template) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "name": t.name,
        "channel": t.channel.value,
        "subject": t.subject,
        "body": t.body,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
    }


def _template_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a template id (UUID)", "invalid_id")]
        ) from None


def _service(request: web.Request) -> TemplateService:
    return request.config_dict[TEMPLATES]


async def create_template(request: web.Request) -> web.Response:
    payload = await json_body(request, TemplateIn)
    template = await _service(request).create(
        tenant_of(request), payload.name, payload.channel, payload.body, payload.subject
    )
    return json_response(
        template_json(template), status=201, headers={"Location": f"/api/v1/templates/{template.id}"}
    )


async def list_templates(request: web.Request) -> web.Response:
    params = query_params(request, TemplateListParams)
    after_id = decode_cursor(params.cursor) if params.cursor else None
    items, next_after = await _service(request).search(tenant_of(request), after_id, params.page_size)
    return json_response(
        {
            "data": [template_json(t) for t in items],
            "next_cursor": encode_cursor(next_after) if next_after else None,
        }
    )


async def get_template(request: web.Request) -> web.Response:
    template = await _service(request).get(tenant_of(request), _template_id(request))
    return json_response(template_json(template))


async def replace_template(request: web.Request) -> web.Response:
    template_id = _template_id(request)
    payload = await json_body(request, TemplateIn)
    template = await _service(request).update(
        tenant_of(request), template_id, payload.name, payload.channel, payload.body, payload.subject
    )
    return json_response(template_json(template))


async def delete_template(request: web.Request) -> web.Response:
    await _service(request).delete(tenant_of(request), _template_id(request))
    return web.Response(status=204)
