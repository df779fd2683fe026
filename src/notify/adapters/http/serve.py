"""How a route entry is served: its inputs are read with the models the entry documents, the handler runs,
and its :class:`Reply` must be one of the entry's documented answers (status, model and headers); it is then
serialised through its model. So the route table is not only documentation: what it says is what happens."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from notify.adapters.http.contract import ETAG, Reply, Route, Success
from notify.adapters.http.inputs import INPUTS, Inputs, json_body, optional_body, query_params

JSON = "application/json"


def send(reply: Reply) -> web.Response:
    """``reply`` as an aiohttp response: the body serialised through its model (aliases, RFC 3339 times)."""
    if reply.body is None:
        return web.Response(status=reply.status, headers=reply.headers)
    payload = reply.body.__pydantic_serializer__.to_json(reply.body)
    return web.Response(
        body=payload, status=reply.status, headers=reply.headers, content_type=JSON, charset="utf-8"
    )


def _check(route: Route, reply: Reply, documented: dict[int, Success]) -> None:
    success = documented.get(reply.status)
    model = type(reply.body) if reply.body is not None else None
    expected = set(success.headers) - {ETAG} if success is not None else set()
    if success is None or success.model is not model or set(reply.headers or ()) != expected:
        # A handler answering what its entry does not document: a programming error (a 500), which every
        # test of the route catches.
        raise TypeError(
            f"{route.method} {route.path} answered {reply.status} {model.__name__ if model else 'no body'} "
            f"with headers {sorted(reply.headers or ())}, which its route entry does not document"
        )


def serve(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of ``route``."""
    operation = route.operation
    documented = {success.status: success for success in operation.success}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = None
        if operation.body is not None:
            reader = json_body if operation.body.required else optional_body
            body = await reader(request, operation.body.model)
        query = query_params(request, operation.query) if operation.query is not None else None
        request[INPUTS] = Inputs(body, query)
        answer = await route.handler(request)
        if isinstance(answer, web.StreamResponse):
            return answer
        _check(route, answer, documented)
        if ETAG in documented[answer.status].headers and answer.body is not None:
            return _with_etag(request, answer)
        return send(answer)

    return handle


def _with_etag(request: web.Request, reply: Reply) -> web.Response:
    """A strong ETag of the body; a client that sends it back in If-None-Match gets a 304 without it."""
    assert reply.body is not None
    payload = reply.body.__pydantic_serializer__.to_json(reply.body)
    etag = '"' + hashlib.blake2b(payload, digest_size=16).hexdigest() + '"'
    wanted = {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}
    headers = {**(reply.headers or {}), ETAG: etag}
    if etag in wanted or f"W/{etag}" in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=payload, status=reply.status, headers=headers, content_type=JSON, charset="utf-8"
    )
