"""``GET /ws``: live status events over WebSocket.

Authenticate with ``Authorization: Bearer <key>`` (or ``?api_key=`` for browsers, which cannot set headers
on a WebSocket). Then optionally send ``{"action": "subscribe", "notification_ids": [...], "batch_ids":
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

from notify.adapters.telemetry.metrics import WS_CLIENTS, WS_DROPPED, WS_EVENTS
from notify.app.auth import Authenticator
from notify.app.live import Filter, StatusHub, Subscriber
from notify.domain.errors import FieldError, ValidationFailed
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
        hub: StatusHub,
        authenticator: Authenticator,
        *,
        heartbeat_s: float,
        max_message_bytes: int = 65536,
    ) -> None:
        self.hub = hub
        self._authenticator = authenticator
        self._heartbeat_s = heartbeat_s
        self._max_message_bytes = max_message_bytes
        self._sockets: dict[web.WebSocketResponse, asyncio.Transport | None] = {}

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        authorization = request.headers.get("Authorization")
        if authorization is None and "api_key" in request.query:
            authorization = f"Bearer {request.query['api_key']}"
        key = await self._authenticator.authenticate(authorization)  # 401 in the error shape, before upgrade
        ws = web.WebSocketResponse(heartbeat=self._heartbeat_s, max_msg_size=self._max_message_bytes)
        if not ws.can_prepare(request).ok:
            raise ValidationFailed.for_fields(
                [
                    FieldError(
                        "Upgrade", "this endpoint only speaks WebSocket: send an upgrade request", "required"
                    )
                ]
            )
        await ws.prepare(request)
        subscriber = self.hub.connect(key.tenant_id)
        self._sockets[ws] = request.transport
        WS_CLIENTS.inc()
        pump = asyncio.create_task(self._pump(ws, subscriber, request.transport), name="ws-pump")
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self._on_text(subscriber, message.data)
                elif message.type is WSMsgType.BINARY:
                    subscriber.offer(_error("Send JSON text frames.", "binary_frame"))
        finally:
            self.hub.disconnect(subscriber)
            self._sockets.pop(ws, None)
            WS_CLIENTS.dec()
            await _finish(pump)
        return ws

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
