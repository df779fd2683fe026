"""The frames between the API and its template worker processes: a 4-byte big-endian length, then JSON."""

from __future__ import annotations

import json
import struct
from typing import Any

from notify.domain.errors import FieldError

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload)) + payload


def header_size() -> int:
    return _HEADER.size


def frame_length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes")
    return int(length)


def errors_out(errors: list[FieldError]) -> list[dict[str, str]]:
    return [e.as_dict() for e in errors]


def errors_in(raw: list[dict[str, str]]) -> list[FieldError]:
    return [FieldError(e["field"], e["message"], e["code"]) for e in raw]
