"""The configuration reference (docs/configuration.md), generated from ``Settings``: every variable, its
default and its meaning. ``notify settings`` prints it; a test keeps the committed file equal to it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from notify.settings import Settings

HEADER = """# Configuration reference

Every setting is an environment variable (or a line of a `.env` file in the working directory). Generated from
`notify.settings.Settings` by `notify settings`; do not edit by hand.

| variable | default | meaning |
|---|---|---|
"""


def _default(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    if value == "":
        return "(empty)"
    return f"`{value}`"


def reference() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default is not PydanticUndefined:
            default = field.default
        elif field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = None
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `NOTIFY_{name.upper()}` | {_default(default)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


def undocumented() -> list[str]:
    """Settings without a meaning (a description) to show."""
    return [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
