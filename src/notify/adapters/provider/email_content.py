"""An email's content: an HTML document (it starts with ``<!doctype html`` or ``<html``) is sent with a
plain-text rendering beside it; anything else is plain text. Shared by the SMTP and SES providers."""

from __future__ import annotations

import html
import re

_HTML_START = re.compile(r"\s*<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def is_html(content: str) -> bool:
    return _HTML_START.match(content) is not None


def plain_text_of(document: str) -> str:
    """The text of an HTML document: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", document)).strip()
