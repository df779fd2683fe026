"""Provider callbacks: receipts a provider posts to notify (Twilio's status callback, SES events through SNS).
They live outside ``/api/v1`` and outside the client API's route table: a provider has no API key, so each
request is verified by the provider's own signature instead, and their shape is the provider's
(docs/providers.md)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from notify.adapters.http.state import RECEIPTS
from notify.adapters.provider.sns import SnsVerifier, ses_receipt
from notify.adapters.provider.twilio import twilio_receipt, valid_signature
from notify.adapters.telemetry.metrics import RECEIPTS_REPORTED
from notify.domain.errors import FieldError, Forbidden, NotFound, ValidationFailed
from notify.ports.clock import Clock

log = logging.getLogger(__name__)

CALLBACKS_PREFIX = "/callbacks/"
TWILIO_STATUS_PATH = CALLBACKS_PREFIX + "twilio/{provider}"
SES_EVENTS_PATH = CALLBACKS_PREFIX + "ses/{provider}"


@dataclass(frozen=True, slots=True)
class TwilioCallback:
    auth_token: str  # what Twilio signs with
    url: str  # the status callback URL as configured: what Twilio signed


@dataclass(frozen=True, slots=True)
class SesCallback:
    topic_arn: str  # the SNS topic the SES configuration set publishes to: nothing else is accepted
    verifier: SnsVerifier
    session: aiohttp.ClientSession  # confirms the subscription


@dataclass(frozen=True, slots=True)
class Callbacks:
    clock: Clock
    twilio: dict[str, TwilioCallback] = field(default_factory=dict)  # by provider name
    ses: dict[str, SesCallback] = field(default_factory=dict)


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


async def ses_events(request: web.Request) -> web.Response:
    """An SNS message (SNS posts JSON as text/plain): a subscription to confirm, or an SES event. A message
    about an email notify did not send is acknowledged and dropped (SNS would otherwise retry it)."""
    callbacks = request.app[CALLBACKS]
    provider = request.match_info["provider"]
    callback = callbacks.ses.get(provider)
    if callback is None:
        raise NotFound(f"No SES provider named {provider!r} takes events here.")
    try:
        message = json.loads(await request.read())
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise ValidationFailed.for_fields([FieldError("body", "is not an SNS message", "invalid_json")])
    if message.get("TopicArn") != callback.topic_arn or not await callback.verifier.verify(message):
        raise Forbidden("This SNS message is not signed by AWS for the configured topic.")
    if message["Type"] == "SubscriptionConfirmation":
        url = message.get("SubscribeURL")
        if not callback.verifier.trusted_url(url):
            raise Forbidden("The subscription's SubscribeURL is not AWS's.")
        async with callback.session.get(str(url), timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                raise NotFound(f"SNS did not confirm the subscription: HTTP {resp.status}")
        log.info("SNS subscription confirmed", extra={"provider": provider, "topic": callback.topic_arn})
        return web.Response(status=204)
    if message["Type"] != "Notification":
        return web.Response(status=204)
    receipt = ses_receipt(provider, str(message.get("Message", "")), callbacks.clock.now())
    if receipt is None:
        return web.Response(status=204)
    try:
        await request.app[RECEIPTS].record(receipt)
    except NotFound:
        log.info(
            "SES event for an email notify did not send", extra={"message_id": receipt.provider_message_id}
        )
        return web.Response(status=204)
    RECEIPTS_REPORTED.labels(provider, receipt.status.value).inc()
    return web.Response(status=204)


def add_callback_routes(app: web.Application) -> None:
    app.router.add_post(TWILIO_STATUS_PATH, twilio_status)
    app.router.add_post(SES_EVENTS_PATH, ses_events)
