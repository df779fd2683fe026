"""The operator console at ``/console``: server-rendered pages, a signed session cookie, and a little
JavaScript for the live feed, the figures and the template preview. Its assets ship inside the package."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from notify.adapters.http.console.pages import CONSOLE, Console, add_console_routes
from notify.adapters.http.console.session import SessionCookies

__all__ = ["CONSOLE", "Console", "SessionCookies", "add_console"]


def add_console(app: web.Application) -> None:
    add_console_routes(app, str(Path(__file__).parent / "static"))
