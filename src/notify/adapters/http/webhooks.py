"""Webhook endpoint handlers (``/api/v1/webhooks``; routed in ``routes.py``)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from notify.adapters.http.auth import tenant_of
from notify.adapters.http.contract import LOCATION, Reply
from notify.adapters.http.inputs import body, query
from notify.adapters.http.responses import (
    WebhookAttemptListOut,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookListOut,
    WebhookOut,
    WebhookWithSecretOut,
)
from notify.adapters.http.state import WEBHOOKS
from notify.app.webhooks import WebhookService
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel, Status
from notify.domain.webhooks import MAX_URL_LENGTH, DeliveryStatus

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints


class WebhookIn(BaseModel):
    """Body of POST /webhooks."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    statuses: list[Status] = Field(default_factory=list, max_length=8, description="Empty: every status.")
    channels: list[Channel] = Field(default_factory=list, max_length=3, description="Empty: every channel.")
    enabled: bool = True


class WebhookPatchIn(BaseModel):
    """Body of PATCH /webhooks/{id}: the fields given change, the others stay."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH)
    statuses: list[Status] | None = Field(None, max_length=8)
    channels: list[Channel] | None = Field(None, max_length=3)
    enabled: bool | None = Field(None, description="true also re-enables an endpoint notify disabled.")


class DeliveryListParams(BaseModel):
    """Query parameters of GET /webhooks/{id}/deliveries."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatus | None = None
    before: int = Field(0, ge=0, le=MAX_ID, description="`next_before` of the previous page (0: the newest).")
    page_size: int = Field(default=20, ge=1, le=100)


class AttemptsParams(BaseModel):
    """Query parameters of GET /webhooks/{id}/attempts."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: int = Field(ge=1, le=MAX_ID)


class DeliveryReplayIn(BaseModel):
    """Body of POST /webhooks/{id}/deliveries/replay."""

    model_config = ConfigDict(extra="forbid", strict=True)

    delivery_id: int = Field(ge=1, le=MAX_ID)


def _endpoint_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise ValidationFailed.for_fields(
            [FieldError("id", "must be a webhook id (UUID)", "invalid_id")]
        ) from None


def _service(request: web.Request) -> WebhookService:
    return request.config_dict[WEBHOOKS]


async def create_webhook(request: web.Request) -> Reply:
    wanted = body(request, WebhookIn)
    endpoint = await _service(request).create(
        tenant_of(request), wanted.url, frozenset(wanted.statuses), frozenset(wanted.channels), wanted.enabled
    )
    return Reply(WebhookWithSecretOut.of(endpoint), 201, {LOCATION: f"/api/v1/webhooks/{endpoint.id}"})


async def list_webhooks(request: web.Request) -> Reply:
    return Reply(WebhookListOut.of(await _service(request).all(tenant_of(request))))


async def get_webhook(request: web.Request) -> Reply:
    return Reply(WebhookOut.of(await _service(request).get(tenant_of(request), _endpoint_id(request))))


async def update_webhook(request: web.Request) -> Reply:
    endpoint_id = _endpoint_id(request)
    wanted = body(request, WebhookPatchIn)
    endpoint = await _service(request).update(
        tenant_of(request),
        endpoint_id,
        url=wanted.url,
        statuses=frozenset(wanted.statuses) if wanted.statuses is not None else None,
        channels=frozenset(wanted.channels) if wanted.channels is not None else None,
        enabled=wanted.enabled,
    )
    return Reply(WebhookOut.of(endpoint))


async def delete_webhook(request: web.Request) -> Reply:
    await _service(request).delete(tenant_of(request), _endpoint_id(request))
    return Reply(None, 204)


async def rotate_webhook_secret(request: web.Request) -> Reply:
    endpoint = await _service(request).rotate_secret(tenant_of(request), _endpoint_id(request))
    return Reply(WebhookWithSecretOut.of(endpoint))


async def list_webhook_deliveries(request: web.Request) -> Reply:
    endpoint_id = _endpoint_id(request)
    params = query(request, DeliveryListParams)
    found = await _service(request).deliveries(
        tenant_of(request), endpoint_id, params.status, params.before or None, params.page_size
    )
    return Reply(WebhookDeliveryPageOut.of(found, params.page_size))


async def replay_webhook_delivery(request: web.Request) -> Reply:
    endpoint_id = _endpoint_id(request)
    wanted = body(request, DeliveryReplayIn)
    delivery = await _service(request).replay(tenant_of(request), endpoint_id, wanted.delivery_id)
    return Reply(WebhookDeliveryOut.of(delivery), 202)


async def list_webhook_attempts(request: web.Request) -> Reply:
    endpoint_id = _endpoint_id(request)
    params = query(request, AttemptsParams)
    found = await _service(request).attempts(tenant_of(request), endpoint_id, params.delivery_id)
    return Reply(WebhookAttemptListOut.of(found))
