"""A tenant's own providers: PUT, GET and DELETE /api/v1/providers (routed in ``routes.py``). The entries are
validated exactly as ``NOTIFY_PROVIDERS`` is, stored encrypted, and never sent back: answers name each
provider and its type only."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from notify.adapters.http.auth import API_KEY
from notify.adapters.http.contract import Reply
from notify.adapters.http.inputs import body, query
from notify.adapters.http.responses import TenantProvidersOut
from notify.adapters.http.schemas import TenantChannelParams, TenantProvidersIn, TenantProvidersParams
from notify.adapters.http.state import ROUND_BUDGET_S, TENANT_PROVIDERS
from notify.domain.errors import FieldError, ValidationFailed


def _reveal(value: Any) -> Any:
    """A model dump with its secrets in clear: what is stored (encrypted) for the worker to use."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    return value


async def put_providers(request: web.Request) -> Reply:
    payload = body(request, TenantProvidersIn)
    budget = request.app[ROUND_BUDGET_S]
    if sum(p.timeout_s for p in payload.providers) > budget:
        raise ValidationFailed.for_fields(
            [
                FieldError(
                    "providers",
                    f"their timeouts add up to more than a delivery round allows ({budget:g} s: the "
                    "operator's providers' timeouts added up)",
                    "too_slow",
                )
            ]
        )
    entries = json.dumps([_reveal(p.model_dump()) for p in payload.providers])
    service = request.app[TENANT_PROVIDERS]
    tenant = await service.set(request[API_KEY], payload.tenant_id, payload.channel, entries)
    _, stored = await service.of(request[API_KEY], tenant)
    return Reply(TenantProvidersOut.of(tenant, stored))


async def get_providers(request: web.Request) -> Reply:
    params = query(request, TenantProvidersParams)
    tenant, stored = await request.app[TENANT_PROVIDERS].of(request[API_KEY], params.tenant_id)
    return Reply(TenantProvidersOut.of(tenant, stored))


async def delete_providers(request: web.Request) -> Reply:
    params = query(request, TenantChannelParams)
    await request.app[TENANT_PROVIDERS].remove(request[API_KEY], params.tenant_id, params.channel)
    return Reply(None, 204)
