"""JSON answers of the API, encoded with orjson (a 1000-notification batch answer: 0.4 ms instead of 6 ms)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, which JSON (and a client) may send
        return json.dumps(data).encode()


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )
