"""Provider callbacks: receipts a provider posts to notify (Twilio's status callback). They live outside
``/api/v1`` and outside the client API's route table: a provider has no API key, so each request is verified
by the provider's own signature instead, and their shape is the provider's (docs/providers.md)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from notify.adapters.http.state import RECEIPTS
from notify.adapters.provider.twilio import twilio_receipt, valid_signature
from notify.adapters.telemetry.metrics import RECEIPTS_REPORTED
from notify.domain.errors import Forbidden, NotFound
from notify.ports.clock import Clock

TWILIO_STATUS_PATH = "/callbacks/twilio/{provider}"


@dataclass(frozen=True, slots=True)
class TwilioCallback:
    auth_token: str  # what Twilio signs with
    url: str  # the status callback URL as configured: what Twilio signed


@dataclass(frozen=True, slots=True)
class Callbacks:
    clock: Clock
    twilio: dict[str, TwilioCallback]  # by provider name


CALLBACKS = web.AppKey("callbacks", Callbacks)


async def twilio_status(request: web.Request) -> web.Response:
    callbacks = request.app[CALLBACKS]
    provider = request.match_info["provider"]
    callback = callbacks.twilio.get(provider)
    if callback is None:
        raise NotFound(f"No Twilio provider named {provider!r} takes status callbacks here.")
    params = {name: str(value) for name, value in (await request.post()).items()}
    if not valid_signature(
        callback.auth_token, callback.url, params, request.headers.get("X-Twilio-Signature", "")
    ):
        raise Forbidden("The X-Twilio-Signature does not match: this request was not signed by Twilio.")
    receipt = twilio_receipt(provider, params, callbacks.clock.now())
    await request.app[RECEIPTS].record(receipt)
    RECEIPTS_REPORTED.labels(provider, receipt.status.value).inc()
    return web.Response(status=204)


def add_callback_routes(app: web.Application) -> None:
    app.router.add_post(TWILIO_STATUS_PATH, twilio_status)
