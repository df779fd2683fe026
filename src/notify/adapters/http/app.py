"""The aiohttp applications: ``notify api``'s (routes from the table in ``routes.py``, the middleware chain,
the docs) and the worker's small health and metrics port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from aiohttp import web

from notify.adapters.http.callbacks import add_callback_routes
from notify.adapters.http.console import add_console
from notify.adapters.http.contract import Route
from notify.adapters.http.errors import deadline_middleware, error_middleware
from notify.adapters.http.handlers import health, readiness_response
from notify.adapters.http.middleware import (
    auth_middleware,
    correlation_middleware,
    input_guard_middleware,
    stamp_correlation_header,
)
from notify.adapters.http.openapi import add_docs_routes
from notify.adapters.http.routes import ROUTES
from notify.adapters.http.serve import send, serve
from notify.adapters.http.state import LIVE, MAX_BODY_BYTES, ReadinessCheck
from notify.adapters.telemetry.metrics import http_metrics_middleware, metrics_handler
from notify.adapters.telemetry.tracing import server_span_middleware


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        if route.method == "GET":  # with HEAD, as aiohttp's add_get does
            app.router.add_get(route.router_path, serve(route))
        else:
            app.router.add_route(route.method, route.router_path, serve(route))


async def _close_websockets(app: web.Application) -> None:
    if LIVE in app:
        await app[LIVE].shutdown()


def create_worker_app(readiness: Mapping[str, ReadinessCheck]) -> web.Application:
    """The worker's own small HTTP port: liveness, readiness and Prometheus metrics."""

    async def worker_health(request: web.Request) -> web.Response:
        return send(await health(request))

    async def worker_ready(request: web.Request) -> web.Response:
        answer = await readiness_response(readiness)
        return answer if isinstance(answer, web.Response) else send(answer)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/health", worker_health)
    app.router.add_get("/health/ready", worker_ready)
    app.router.add_get("/metrics", metrics_handler)
    return app


def create_app(
    max_body_bytes: int,
    resources: Callable[[web.Application], AsyncIterator[None]],
) -> web.Application:
    """``resources`` is a cleanup context that opens what the handlers need and sets ``app[SERVICES]``,
    ``app[TEMPLATES]`` and ``app[STATS]``."""
    app = web.Application(
        middlewares=[
            correlation_middleware,
            server_span_middleware,
            http_metrics_middleware,
            error_middleware,
            deadline_middleware,
            auth_middleware,
            input_guard_middleware,
        ],
        client_max_size=max_body_bytes,
    )
    app[MAX_BODY_BYTES] = max_body_bytes
    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(stamp_correlation_header)
    app.on_shutdown.append(_close_websockets)
    add_routes(app, ROUTES)
    add_callback_routes(app)
    add_docs_routes(app)
    add_console(app)
    return app
