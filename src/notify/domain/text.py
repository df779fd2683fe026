"""Text that came from outside (a provider's answer, its error page) made safe to store and show.

PostgreSQL's text cannot hold U+0000, and a lone surrogate (``"\\ud800"`` from a JSON answer) cannot be
encoded as UTF-8 at all: either would make storing the outcome fail, and the delivery be retried forever.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable(text: str, limit: int) -> str:
    """``text`` without control characters (tabs and newlines stay) or lone surrogates, at most ``limit``
    characters (cut with an ellipsis)."""
    clean = _CONTROL.sub("", text.encode("utf-8", "replace").decode("utf-8"))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def identifier(text: str, limit: int = 255) -> str | None:
    """A provider's message id: printable, without whitespace, at most ``limit`` characters; None when
    nothing usable is left."""
    clean = "".join(ch for ch in storable(text, 4 * limit) if ch.isprintable() and not ch.isspace())
    return clean[:limit] or None
