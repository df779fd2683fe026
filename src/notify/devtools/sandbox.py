"""The sandbox provider: a real local HTTP gateway that stands in for an SMS/email/push provider.

It accepts the provider call of docs/providers.md and answers 202 with a message id, records every call it
accepted (queryable, with counts per ``Idempotency-Key``), and has knobs for latency, error rate, status
codes and 429 with Retry-After, settable by flags at start and at run time:

    POST /send                 the provider call (also /send/{channel})
    GET  /messages             accepted calls; filters ?idempotency_key= ?to= ?channel=, ?limit=
    GET  /stats                totals, and every idempotency key seen more than once
    GET  /control, PUT /control  read / change knobs (JSON, partial updates)
    POST /reset                forget messages and counters (knobs stay)
    GET  /health
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from aiohttp import web


@dataclass
class Knobs:
    latency_ms: float = 0.0  # added to every call
    latency_jitter_ms: float = 0.0  # plus uniform random 0..jitter
    error_rate: float = 0.0  # share of calls answered with error_status
    error_status: int = 500
    rate_limit_rate: float = 0.0  # share of calls answered 429 with Retry-After
    retry_after_s: float = 1.0
    fail_next: int = 0  # the next N calls fail with error_status, then it resets to 0
    down: bool = False  # answer every call with 503 (a gateway that is down)

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(known)}")
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(current, int | float) and (
                not isinstance(value, int | float) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{name} must be a non-negative number")
            setattr(self, name, type(current)(value))


class SandboxState:
    def __init__(self, knobs: Knobs | None = None, *, seed: int | None = None) -> None:
        self.knobs = knobs or Knobs()
        self.messages: list[dict[str, Any]] = []
        self.by_key: Counter[str] = Counter()
        self.message_ids: dict[str, str] = {}
        self.rejected = 0
        self._random = random.Random(seed)

    def reset(self) -> None:
        self.messages.clear()
        self.by_key.clear()
        self.message_ids.clear()
        self.rejected = 0

    def injected_failure(self) -> tuple[int, dict[str, str]] | None:
        k = self.knobs
        if k.down:
            return 503, {}
        if k.fail_next > 0:
            k.fail_next -= 1
            return k.error_status, {}
        roll = self._random.random()
        if roll < k.rate_limit_rate:
            return 429, {"Retry-After": str(max(0, round(k.retry_after_s)))}
        if roll < k.rate_limit_rate + k.error_rate:
            return k.error_status, {}
        return None

    def latency_s(self) -> float:
        k = self.knobs
        return (k.latency_ms + self._random.uniform(0, k.latency_jitter_ms)) / 1000.0


STATE = web.AppKey("sandbox_state", SandboxState)


async def _send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    delay = state.latency_s()
    if delay:
        await asyncio.sleep(delay)
    failure = state.injected_failure()
    if failure is not None:
        state.rejected += 1
        status, headers = failure
        return web.json_response(
            {"error": "injected failure", "status": status}, status=status, headers=headers
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        state.rejected += 1
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(body, dict) or not body.get("to") or not isinstance(body.get("content"), str):
        state.rejected += 1
        return web.json_response({"error": "'to' and 'content' are required"}, status=422)
    key = request.headers.get("Idempotency-Key") or ""
    message_id = state.message_ids.get(key) if key else None
    if message_id is None:
        message_id = f"sbx-{uuid4()}"
        if key:
            state.message_ids[key] = message_id
    state.by_key[key] += 1
    state.messages.append(
        {
            "seq": len(state.messages) + 1,
            "message_id": message_id,
            "received_at": datetime.now(UTC).isoformat(),
            "received_monotonic": time.monotonic(),
            "idempotency_key": key or None,
            "attempt": request.headers.get("X-Notify-Attempt"),
            "correlation_id": request.headers.get("X-Correlation-ID"),
            "traceparent": request.headers.get("traceparent"),
            "timestamp": request.headers.get("X-Notify-Timestamp"),
            "signature": request.headers.get("X-Notify-Signature"),
            "raw_body": raw.decode(errors="replace"),
            "path": request.path,
            "body": body,
        }
    )
    return web.json_response({"message_id": message_id, "status": "accepted"}, status=202)


async def _messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    selected = state.messages
    key = request.query.get("idempotency_key")
    if key is not None:
        selected = [m for m in selected if m["idempotency_key"] == key]
    to = request.query.get("to")
    if to is not None:
        selected = [m for m in selected if m["body"].get("to") == to]
    channel = request.query.get("channel")
    if channel is not None:
        selected = [m for m in selected if m["body"].get("channel") == channel]
    try:
        limit = int(request.query.get("limit", "0"))
    except ValueError:
        return web.json_response({"error": "limit must be an integer"}, status=400)
    if limit > 0:
        selected = selected[-limit:]
    return web.json_response({"count": len(selected), "messages": selected})


async def _stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "accepted": len(state.messages),
            "rejected": state.rejected,
            "unique_keys": len(state.by_key),
            "duplicates": {k: n for k, n in state.by_key.items() if n > 1},
        }
    )


async def _get_control(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[STATE].knobs))


async def _put_control(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object")
        state.knobs.update(changes)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(asdict(state.knobs))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_sandbox_app(state: SandboxState | None = None) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state or SandboxState()
    app.router.add_post("/send", _send)
    app.router.add_post("/send/{channel}", _send)
    app.router.add_get("/messages", _messages)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/control", _get_control)
    app.router.add_put("/control", _put_control)
    app.router.add_post("/reset", _reset)
    app.router.add_get("/health", _health)
    return app
