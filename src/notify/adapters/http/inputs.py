"""Reading what a request carries into pydantic models: a required JSON body, an optional one, query
parameters. Every failure is a 400 in the error shape naming the field.

``serve.py`` reads them with the models the route table names (``Operation.body`` and ``.query``) before the
handler runs; the handler takes them with :func:`body` and :func:`query`, naming the model it expects, which
must be the one the table documents."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Inputs:
    """What ``serve.py`` read from a request, per its route's operation."""

    body: BaseModel | None = None
    query: BaseModel | None = None


INPUTS = web.RequestKey("inputs", Inputs)


def _expect(value: BaseModel | None, model: type[M], what: str) -> M:
    if not isinstance(value, model):
        # A handler and its route entry disagree: a programming error, caught by any test of the route.
        read = type(value).__name__
        raise TypeError(f"the route table reads {what} as {read}, the handler expects {model.__name__}")
    return value


def body(request: web.Request, model: type[M]) -> M:
    """The request body, read with the route's ``Operation.body`` model (which must be ``model``)."""
    return _expect(request[INPUTS].body, model, "the body")


def query(request: web.Request, model: type[M]) -> M:
    """The query parameters, read with the route's ``Operation.query`` model (which must be ``model``)."""
    return _expect(request[INPUTS].query, model, "the query")
