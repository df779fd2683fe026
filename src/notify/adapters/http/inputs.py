"""Reading what a request carries into the pydantic models of ``schemas.py``: a required JSON body, an
optional one, query parameters. Every failure is a 400 in the error shape naming the field."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from notify.adapters.http.errors import from_pydantic
from notify.domain.errors import FieldError, ValidationFailed

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request, model: type[M]) -> M:
    """A required JSON body (413 past the application's client_max_size)."""
    body = await request.read()
    if not body.strip():
        raise ValidationFailed(
            "The request body is empty; a JSON object is expected.",
            [FieldError("body", "is required", "required")],
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None


async def optional_body(request: web.Request, model: type[M]) -> M:
    """A JSON body that may be absent (then every field takes its default)."""
    body = await request.read()
    try:
        return model.model_validate_json(body) if body.strip() else model.model_validate({})
    except ValidationError as exc:
        raise from_pydantic(exc) from None


def query_params(request: web.Request, model: type[M]) -> M:
    """Query parameters, each given at most once (strings from the URL, parsed laxly by the model)."""
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:
        raise ValidationFailed.for_fields(
            [FieldError(k, "must be given at most once", "repeated") for k in repeated]
        )
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise from_pydantic(exc) from None
