"""``GET /ws``: live status events over WebSocket.

Authenticate with ``Authorization: Bearer <key>``, or, from a browser (which cannot set headers on a
WebSocket), with ``?token=`` holding a single-use token valid for a minute from ``POST /api/v1/live/tokens``:
an API key never travels in a URL. A key has at most ``NOTIFY_WS_MAX_CONNECTIONS_PER_KEY`` streams open
(429 past it), and a stream whose key is revoked is closed with 1008 within ``NOTIFY_API_KEY_CACHE_S``.
Then optionally send ``{"action": "subscribe", "notification_ids": [...], "batch_ids":
[...], "channels": [...]}``; each subscribe replaces the previous filter and is acknowledged with
``{"action": "subscribed", ...}``. Without one, every event of the key's tenant is sent. Each event is one
text frame ``{"notification_id", "batch_id", "channel", "status", "previous_status", "attempt", "error",
"provider", "next_attempt_at", "timestamp"}``. A client that lets more than ``NOTIFY_WS_CLIENT_BUFFER``
events pile up is closed with code 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Literal
from uuid import UUID

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notify.adapters.http.auth import FailedAuthLimiter
from notify.adapters.telemetry.metrics import WS_CLIENTS, WS_DROPPED, WS_EVENTS
from notify.app.auth import Authenticator
from notify.app.live import Filter, LiveHub, Subscriber
from notify.domain.errors import FieldError, RateLimited, Unauthorized, ValidationFailed
from notify.domain.keys import ApiKey
from notify.domain.model import Channel

log = logging.getLogger(__name__)

MAX_FILTER_ITEMS = 1000


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["subscribe"]
    notification_ids: list[UUID] = Field(default_factory=list, max_length=MAX_FILTER_ITEMS)
    batch_ids: list[UUID] = Field(default_factory=list, max_length=MAX_FILTER_ITEMS)
    channels: list[Channel] = Field(default_factory=list, max_length=3)

    def to_filter(self) -> Filter:
        return Filter(
            notification_ids=frozenset(str(i) for i in self.notification_ids),
            batch_ids=frozenset(str(i) for i in self.batch_ids),
            channels=frozenset(c.value for c in self.channels),
        )


class LiveEndpoint:
    def __init__(
        self,
        hub: LiveHub,
        authenticator: Authenticator,
        *,
        heartbeat_s: float,
        max_message_bytes: int = 65536,
        max_per_key: int = 16,
        recheck_s: float = 5.0,
        failed_auth: FailedAuthLimiter | None = None,
    ) -> None:
        self.hub = hub
        self._authenticator = authenticator
        self._heartbeat_s = heartbeat_s
        self._max_message_bytes = max_message_bytes
        self._max_per_key = max_per_key
        self._recheck_s = max(0.5, recheck_s)
        self._failed_auth = failed_auth or FailedAuthLimiter()
        self._sockets: dict[web.WebSocketResponse, asyncio.Transport | None] = {}
        self._per_key: dict[UUID, int] = {}

    async def _authenticate(self, request: web.Request) -> ApiKey:
        """401 in the error shape, before the upgrade; 429 for a client that keeps failing."""
        if "api_key" in request.query:
            raise ValidationFailed.for_fields(
                [
                    FieldError(
                        "api_key",
                        "an API key is never accepted in a URL: send it as 'Authorization: Bearer <key>', or "
                        "get a single-use token from POST /api/v1/live/tokens and pass ?token=",
                        "not_allowed",
                    )
                ]
            )
        peer = request.remote or "unknown"
        self._failed_auth.check(peer)
        try:
            if "token" in request.query:
                return await self._authenticator.use_live_token(request.query["token"])
            return await self._authenticator.authenticate(request.headers.get("Authorization"))
        except Unauthorized:
            self._failed_auth.failed(peer)
            raise

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        key = await self._authenticate(request)
        if self._per_key.get(key.id, 0) >= self._max_per_key:
            raise RateLimited(
                f"This API key already has {self._max_per_key} live connections open; close one first.", 5.0
            )
        ws = web.WebSocketResponse(heartbeat=self._heartbeat_s, max_msg_size=self._max_message_bytes)
        if not ws.can_prepare(request).ok:
            raise ValidationFailed.for_fields(
                [
                    FieldError(
                        "Upgrade", "this endpoint only speaks WebSocket: send an upgrade request", "required"
                    )
                ]
            )
        self._per_key[key.id] = self._per_key.get(key.id, 0) + 1
        try:
            await ws.prepare(request)
            subscriber = self.hub.connect(key.tenant_id)
            self._sockets[ws] = request.transport
            WS_CLIENTS.inc()
            pump = asyncio.create_task(self._pump(ws, subscriber, request.transport), name="ws-pump")
            watch = asyncio.create_task(self._watch_key(ws, key, request.transport), name="ws-key-watch")
            try:
                async for message in ws:
                    if message.type is WSMsgType.TEXT:
                        self._on_text(subscriber, message.data)
                    elif message.type is WSMsgType.BINARY:
                        subscriber.offer(_error("Send JSON text frames.", "binary_frame"))
            finally:
                watch.cancel()
                self.hub.disconnect(subscriber)
                self._sockets.pop(ws, None)
                WS_CLIENTS.dec()
                await _finish(pump)
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
        finally:
            self._per_key[key.id] -= 1
            if not self._per_key[key.id]:
                del self._per_key[key.id]
        return ws

    async def _watch_key(
        self, ws: web.WebSocketResponse, key: ApiKey, transport: asyncio.Transport | None
    ) -> None:
        """A stream lives no longer than its key: revoked, it is closed with 1008 (policy violation)."""
        while not ws.closed:
            await asyncio.sleep(self._recheck_s)
            try:
                valid = await self._authenticator.still_valid(key)
            except Exception:  # the database is down: keep the stream, look again later
                continue
            if not valid:
                log.info("closing the live stream of a revoked key", extra={"key_id": str(key.id)})
                await _close(ws, WSCloseCode.POLICY_VIOLATION, b"API key revoked", transport)
                return

    def _on_text(self, subscriber: Subscriber, data: str) -> None:
        try:
            wanted = SubscribeIn.model_validate_json(data)
        except ValidationError as exc:
            details = [
                {
                    "field": ".".join(str(p) for p in e["loc"]) or "message",
                    "message": e["msg"],
                    "code": e["type"],
                }
                for e in exc.errors()
            ]
            subscriber.offer(
                _error("The message is not a valid subscribe request.", "invalid_message", details)
            )
            return
        subscriber.filter = wanted.to_filter()
        subscriber.offer({"action": "subscribed", **subscriber.filter.describe()})

    async def _pump(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, transport: asyncio.Transport | None
    ) -> None:
        stalled = False
        while True:
            message = await subscriber.next()
            if message is None:
                break
            send = asyncio.ensure_future(ws.send_str(json.dumps(message, separators=(",", ":"))))
            closed = asyncio.ensure_future(subscriber.closed.wait())
            try:
                await asyncio.wait({send, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not send.done():
                # Dropped (or shut down) while the client was not taking what we sent: a close frame would
                # not get through either.
                stalled = True
                if transport is not None:
                    transport.abort()
                with contextlib.suppress(Exception):
                    await send  # fails at once, the connection is gone
                break
            send.result()
            if "status" in message:
                WS_EVENTS.inc()
        if subscriber.overflowed:
            WS_DROPPED.inc()
            log.warning("websocket client dropped: too slow", extra={"tenant_id": subscriber.tenant_id})
            if not stalled:
                reason = f"too slow: more than {subscriber.capacity} events waiting".encode()
                await _close(ws, WSCloseCode.TRY_AGAIN_LATER, reason, transport)
        elif not ws.closed and not stalled:
            await _close(ws, WSCloseCode.GOING_AWAY, b"server shutting down", transport)

    async def shutdown(self) -> None:
        """Close every connection (on_shutdown): clients learn at once that they must reconnect."""
        self.hub.close_all()
        await asyncio.gather(
            *(
                _close(ws, WSCloseCode.GOING_AWAY, b"server shutting down", transport)
                for ws, transport in list(self._sockets.items())
            )
        )


def _error(text: str, code: str, details: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {"action": "error", "error": text, "code": code, "details": details or []}


async def _close(
    ws: web.WebSocketResponse, code: int, reason: bytes, transport: asyncio.Transport | None = None
) -> None:
    # A client that stopped reading may never let the close frame through: do not wait on it forever, then
    # drop the connection (transport.close() would keep it until the client takes what is buffered).
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason), timeout=2.0)
    except TimeoutError:
        if transport is not None:
            transport.abort()
    except (ConnectionError, RuntimeError):
        pass


async def _finish(task: asyncio.Task[None]) -> None:
    if not task.done():
        # Give the pump a moment to send the close frame it may be about to send, then stop it.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout=0.1)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
