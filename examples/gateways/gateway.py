"""What every gateway in front of a provider does, whichever the provider: check notify's signature, answer a
repeat of an accepted notification without sending it again, and turn the provider's answer into the status
codes of notify's HTTP gateway contract (docs/providers.md). A gateway for a new provider writes one
``Send`` function; twilio_style.py and ses_style.py are two.

The status codes are notify's only signal, so they are chosen for what notify will do with them:

- 200 with ``message_id``: delivered.
- 422 (any 4xx but 429): the message or recipient is refused. The notification fails now (a dead letter);
  nothing a retry could change.
- 429 (with ``Retry-After`` when the provider gave one) and 503: transient. notify retries with backoff and
  fails over to the next provider of the channel; its breaker stops calling after repeated failures.
  Refused credentials, a suspended account and a bad signature are transient too: the operator must act,
  and until then notifications should wait, not all be dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, ClientSession, web


@dataclass(frozen=True)
class Message:
    """The body notify POSTs (docs/providers.md, "The request")."""

    id: str
    to: str
    channel: str
    subject: str | None
    content: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    status: int
    message_id: str | None = None
    error: str | None = None
    retry_after: str | None = None

    @classmethod
    def delivered(cls, message_id: str) -> Outcome:
        return cls(200, message_id=message_id)

    @classmethod
    def refused(cls, error: str) -> Outcome:
        return cls(422, error=error)

    @classmethod
    def unavailable(cls, error: str, *, retry_after: str | None = None, throttled: bool = False) -> Outcome:
        return cls(429 if throttled else 503, error=error, retry_after=retry_after)


Send = Callable[[Message, ClientSession], Awaitable[Outcome]]
SESSION = web.AppKey("session", ClientSession)


def signature_error(secret: bytes, headers: Any, body: bytes, max_skew_s: float) -> str | None:
    """Why the request's ``X-Notify-Signature`` does not hold (``None`` when it does)."""
    timestamp, signature = headers.get("X-Notify-Timestamp", ""), headers.get("X-Notify-Signature", "")
    if not timestamp.isdigit() or not signature:
        return "unsigned request"
    if abs(time.time() - int(timestamp)) > max_skew_s:
        return "signature timestamp too old or in the future"  # a replayed capture
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "signature mismatch"


class AcceptedKeys:
    """Idempotency keys already sent, with the provider's message id, for ``keep_s``. In memory: right for
    one gateway process; with several replicas keep them where all can see them (Redis, a table)."""

    def __init__(self, keep_s: float = 86_400, max_keys: int = 1_000_000) -> None:
        self._keep_s, self._max = keep_s, max_keys
        self._sent: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """One request per key at a time: concurrent repeats wait for the first, then find it sent."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def get(self, key: str) -> str | None:
        found = self._sent.get(key)
        if found is None or time.monotonic() - found[1] > self._keep_s:
            return None
        return found[0]

    def add(self, key: str, message_id: str) -> None:
        self._sent[key] = (message_id, time.monotonic())
        self._sent.move_to_end(key)
        while len(self._sent) > self._max:
            self._sent.popitem(last=False)


def answer(outcome: Outcome, *, replayed: bool = False) -> web.Response:
    if outcome.message_id is not None:
        return web.json_response({"message_id": outcome.message_id, "replayed": replayed})
    headers = {"Retry-After": outcome.retry_after} if outcome.retry_after else None
    return web.json_response({"error": outcome.error}, status=outcome.status, headers=headers)


def create_gateway(
    send: Send, *, hmac_secret: str | None, max_skew_s: float = 300, keys: AcceptedKeys | None = None
) -> web.Application:
    accepted = keys or AcceptedKeys()
    secret = hmac_secret.encode() if hmac_secret else None

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if secret is not None:
            problem = signature_error(secret, request.headers, body, max_skew_s)
            if problem is not None:
                return answer(Outcome.unavailable(problem))  # see the module's docstring: 503, not 401
        try:
            message = Message(**json.loads(body))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": f"not notify's request body: {exc}"}, status=400)
        key = request.headers.get("Idempotency-Key") or message.id
        async with accepted.hold(key):
            sent = accepted.get(key)
            if sent is not None:
                return answer(Outcome.delivered(sent), replayed=True)
            try:
                outcome = await send(message, request.app[SESSION])
            except (ClientError, TimeoutError) as exc:
                outcome = Outcome.unavailable(f"provider unreachable: {exc!r}")
            if outcome.message_id is not None:
                accepted.add(key, outcome.message_id)
            return answer(outcome)

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with ClientSession() as client:
            app[SESSION] = client
            yield

    app = web.Application()
    app.router.add_post("/send", handle)
    app.cleanup_ctx.append(session)
    return app
