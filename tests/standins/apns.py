"""A stand-in for APNs speaking its documented wire format over HTTP/2 and TLS (hypercorn; the real service is
unreachable from the machines the tests run on): ``POST /3/device/{token}`` with ``authorization: bearer
<ES256 JWT>`` (checked with the team's public key: ``iss`` the team, ``kid`` the key), ``apns-topic``,
``apns-push-type``, ``apns-id``; answers 200 with ``apns-id``, or an error status with ``{"reason": ...}``.
Tokens starting ``gone`` are ``410 Unregistered``, ``bad`` ``400 BadDeviceToken``."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.asyncio import serve
from hypercorn.config import Config

from notify.devtools.processes import free_port

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
TOPIC = "com.example.app"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ApnsStandIn:
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    pushes: list[dict[str, Any]] = field(default_factory=list)
    http_versions: set[str] = field(default_factory=set)
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    revoked: bool = False  # answer 403 ExpiredProviderToken to any token made before this was set
    revoked_at: int = 0

    def private_key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                if kind == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif kind == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.http_versions.add(scope["http_version"])
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, answer_headers, answer = self.answer(scope, headers, body)
        await send({"type": "http.response.start", "status": status, "headers": answer_headers})
        await send({"type": "http.response.body", "body": answer})

    def answer(self, scope: Scope, headers: dict[str, str], body: bytes) -> tuple[int, list[Any], bytes]:
        def error(status: int, reason: str) -> tuple[int, list[Any], bytes]:
            return status, [(b"content-type", b"application/json")], json.dumps({"reason": reason}).encode()

        if scope["method"] != "POST" or not scope["path"].startswith("/3/device/"):
            return error(404, "BadPath")
        token = headers.get("authorization", "").removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.key.public_key(), algorithms=["ES256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return error(403, "InvalidProviderToken")
        if header.get("kid") != KEY_ID or claims.get("iss") != TEAM_ID:
            return error(403, "InvalidProviderToken")
        if self.revoked and int(claims.get("iat", 0)) <= self.revoked_at:
            return error(403, "ExpiredProviderToken")
        if headers.get("apns-topic") != TOPIC:
            return error(400, "DeviceTokenNotForTopic")
        if self.fail_next:
            return error(*self.fail_next.pop(0))
        device = scope["path"].removeprefix("/3/device/")
        if device.startswith("gone"):
            return 410, [(b"content-type", b"application/json")], b'{"reason":"Unregistered","timestamp":1}'
        if device.startswith("bad"):
            return error(400, "BadDeviceToken")
        apns_id = headers.get("apns-id", "generated-id")
        self.pushes.append({"device": device, "headers": headers, "payload": json.loads(body)})
        return 200, [(b"apns-id", apns_id.encode())], b""


@asynccontextmanager
async def serving(standin: ApnsStandIn, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Serve ``standin`` over TLS with HTTP/2 on loopback; (its base URL, the CA file that trusts it).

    The server runs in a thread with its own event loop: on shutdown hypercorn waits for its clients to hang
    up, and a worker under test keeps its HTTP/2 connection open until it stops, after the test."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, ca_file = (
        tmp_path / "apns-cert.pem",
        tmp_path / "apns-key.pem",
        tmp_path / "apns-ca.pem",
    )
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(certfile), str(keyfile)
    config.alpn_protocols = ["h2"]
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(standin, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        loop.close()

    thread = threading.Thread(target=run, name="apns-stand-in", daemon=True)
    thread.start()
    try:
        trust = ssl.create_default_context(cafile=str(ca_file))
        for _ in range(500):  # until it listens (a bound on waiting: 10 s)
            if not thread.is_alive():
                raise RuntimeError("the APNs stand-in stopped before listening")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        else:
            raise RuntimeError(f"the APNs stand-in did not listen on {port}")
        yield f"https://127.0.0.1:{port}", str(ca_file)
    finally:
        loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, 2)  # not longer: see above
