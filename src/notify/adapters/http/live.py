"""``GET /ws``: live status events over WebSocket.

Authenticate with ``Authorization: Bearer <key>``, or, from a browser (which cannot set headers on a
WebSocket), with ``?token=`` holding a single-use token valid for a minute from ``POST /api/v1/live/tokens``:
an API key never travels in a URL. A key has at most ``NOTIFY_WS_MAX_CONNECTIONS_PER_KEY`` streams open
(429 past it), and a stream whose key is revoked is closed with 1008 within ``NOTIFY_API_KEY_CACHE_S``.
Then optionally send ``{"action": "subscribe", "notification_ids": [...], "batch_ids":
[...], "channels": [...]}``; each subscribe replaces the previous filter and is acknowledged with
``{"action": "subscribed", ...}``. Without one, every event of the key's tenant is sent. An admin key may
connect with ``?tenants=all`` for every tenant's events, each with its ``tenant_id`` (the console's feed).
Each event is one text frame ``{"notification_id", "batch_id", "channel", "priority",
"status", "previous_status", "attempt", "error", "provider", "next_attempt_at", "timestamp"}``. A client
that lets more than ``NOTIFY_WS_CLIENT_BUFFER`` events pile up is closed with code 1013 (try again later).
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
from notify.domain.errors import FieldError, Forbidden, RateLimited, Unauthorized, ValidationFailed
from notify.domain.keys import ApiKey
from notify.domain.model import Channel
from notify.ports.events import StatusEvents

log = logging.getLogger(__name__)

MAX_FILTER_ITEMS = 1000
REPLAY_PAGE = 500
MAX_REMEMBERED = 100_000  # replayed event ids kept to drop their live twins
SSE_HEARTBEAT_S = 15.0


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["subscribe"]
    notification_ids: list[UUID] = Field(default_factory=list, max_length=MAX_FILTER_ITEMS)
    batch_ids: list[UUID] = Field(default_factory=list, max_length=MAX_FILTER_ITEMS)
    channels: list[Channel] = Field(default_factory=list, max_length=3)
    # Replay the stored events after this event id before live ones (a client resuming where it left off).
    since: int | None = Field(None, ge=0)

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
        events: StatusEvents | None = None,
    ) -> None:
        self.hub = hub
        self._events = events
        self._replays: dict[Subscriber, asyncio.Task[None]] = {}
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
        every_tenant = request.query.get("tenants") == "all"
        if every_tenant and not key.is_admin:
            raise Forbidden("Every tenant's events need an admin API key.")
        self._per_key[key.id] = self._per_key.get(key.id, 0) + 1
        try:
            await ws.prepare(request)
            subscriber = self.hub.connect(None if every_tenant else key.tenant_id)
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
                self._stop_replay(subscriber)
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
        ack: dict[str, object] = {"action": "subscribed", **subscriber.filter.describe()}
        if wanted.since is not None:
            ack["since"] = wanted.since
        subscriber.offer(ack)
        if wanted.since is not None:
            self.resume(subscriber, wanted.since)

    def resume(self, subscriber: Subscriber, since: int) -> None:
        """Replay the stored events after ``since`` (matching the filter), then the live ones held meanwhile
        but those already replayed."""
        self._stop_replay(subscriber)
        subscriber.hold()
        self._replays[subscriber] = asyncio.create_task(self._replay(subscriber, since), name="live-replay")

    def _stop_replay(self, subscriber: Subscriber) -> None:
        task = self._replays.pop(subscriber, None)
        if task is not None:
            task.cancel()

    async def _replay(self, subscriber: Subscriber, after: int) -> None:
        replayed: set[int] = set()
        try:
            while self._events is not None:
                page = await self._events.since(subscriber.tenant_id, after, REPLAY_PAGE)
                for event in page:
                    if subscriber.filter.matches(event):
                        message = event.public() if subscriber.tenant_id is not None else event.for_operator()
                        if not await subscriber.put(message):
                            return
                    if event.event_id is not None:
                        replayed.add(event.event_id)
                if len(page) < REPLAY_PAGE or page[-1].event_id is None:
                    break
                after = page[-1].event_id
                if len(replayed) > MAX_REMEMBERED:  # only the newest can still be among the held live events
                    replayed = {i for i in replayed if i > after - MAX_REMEMBERED // 2}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is down: say so, go on with live events
            log.warning("live replay failed", extra={"error": repr(exc)})
            subscriber.offer(
                _error("The stored events could not be read; live events follow.", "replay_failed")
            )
        finally:
            subscriber.release(replayed)
            self._replays.pop(subscriber, None)

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
            log.warning(
                "websocket client dropped: too slow", extra={"tenant_id": subscriber.tenant_id or "(every)"}
            )
            if not stalled:
                reason = f"too slow: more than {subscriber.capacity} events waiting".encode()
                await _close(ws, WSCloseCode.TRY_AGAIN_LATER, reason, transport)
        elif not ws.closed and not stalled:
            await _close(ws, WSCloseCode.GOING_AWAY, b"server shutting down", transport)

    async def stream(
        self,
        request: web.Request,
        key: ApiKey,
        since: int | None,
        channel: Channel | None,
        every_tenant: bool,
    ) -> web.StreamResponse:
        """``GET /api/v1/events``: the same events as Server-Sent Events (``id:`` the event id, so a browser's
        EventSource resumes by itself with ``Last-Event-ID``), a comment line as heartbeat."""
        if every_tenant and not key.is_admin:
            raise Forbidden("Every tenant's events need an admin API key.")
        if self._per_key.get(key.id, 0) >= self._max_per_key:
            raise RateLimited(
                f"This API key already has {self._max_per_key} live connections open; close one first.", 5.0
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        self._per_key[key.id] = self._per_key.get(key.id, 0) + 1
        subscriber = self.hub.connect(None if every_tenant else key.tenant_id)
        subscriber.filter = Filter(channels=frozenset({channel.value}) if channel else frozenset())
        WS_CLIENTS.inc()
        try:
            await response.prepare(request)
            if since is not None:
                self.resume(subscriber, since)
            while True:
                try:
                    message = await asyncio.wait_for(subscriber.next(), timeout=SSE_HEARTBEAT_S)
                except TimeoutError:
                    if not await self._authenticator.still_valid(key):
                        break
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    break
                await response.write(_sse(message))
                if "status" in message:
                    WS_EVENTS.inc()
        except ConnectionError:
            pass  # the client went away
        finally:
            WS_CLIENTS.dec()
            self._stop_replay(subscriber)
            self.hub.disconnect(subscriber)
            self._per_key[key.id] -= 1
            if not self._per_key[key.id]:
                del self._per_key[key.id]
        return response

    async def shutdown(self) -> None:
        """Close every connection (on_shutdown): clients learn at once that they must reconnect."""
        self.hub.close_all()
        await asyncio.gather(
            *(
                _close(ws, WSCloseCode.GOING_AWAY, b"server shutting down", transport)
                for ws, transport in list(self._sockets.items())
            )
        )


def _sse(message: dict[str, object]) -> bytes:
    data = json.dumps(message, separators=(",", ":"))
    if "status" in message:
        return f"id: {message.get('event_id')}\nevent: status\ndata: {data}\n\n".encode()
    return f"event: {message.get('action', 'message')}\ndata: {data}\n\n".encode()


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
