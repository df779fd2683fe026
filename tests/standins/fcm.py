"""A stand-in for Google's OAuth2 token endpoint and FCM's HTTP v1 send API, speaking their documented wire
formats (the real ones are unreachable from the machines the tests run on).

- ``POST /token``: the JWT bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``,
  ``assertion``); the assertion's RS256 signature is checked with the service account's public key, and its
  ``iss``, ``aud`` and ``scope``; answers ``{"access_token", "expires_in", "token_type"}``.
- ``POST /v1/projects/{project}/messages:send`` with ``Authorization: Bearer``: answers ``{"name": ...}``,
  or a google.rpc.Status error with an ``FcmError`` detail: tokens starting ``unregistered`` are
  ``UNREGISTERED`` (404), ``invalid`` ``INVALID_ARGUMENT`` (400)."""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "notify-test"
CLIENT_EMAIL = "notify@notify-test.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


@dataclass
class FcmStandIn:
    base_url: str = ""  # set once the server listens: the token URI is <base_url>/token
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def service_account_json(self) -> str:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": CLIENT_EMAIL,
                "token_uri": f"{self.base_url}/token",
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        return app

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.key.public_key(),
                algorithms=["RS256"],
                audience=f"{self.base_url}/token",
                issuer=CLIENT_EMAIL,
            )
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if claims.get("scope") != SCOPE:
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    @staticmethod
    def error(status: int, rpc_status: str, message: str, fcm_code: str | None = None) -> web.Response:
        details = (
            [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
            if fcm_code
            else []
        )
        body = {"error": {"code": status, "message": message, "status": rpc_status, "details": details}}
        return web.json_response(body, status=status)

    async def send(self, request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            return self.error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                "THIRD_PARTY_AUTH_ERROR",
            )
        if request.match_info["project"] != PROJECT:
            return self.error(403, "PERMISSION_DENIED", "Permission denied.", "SENDER_ID_MISMATCH")
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status == 429:
                return self.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
            return self.error(status, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
        message = (await request.json())["message"]
        token = str(message.get("token", ""))
        if token.startswith("unregistered"):
            return self.error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if token.startswith("invalid"):
            return self.error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
            )
        self.messages.append(message)
        return web.json_response(
            {"name": f"projects/{PROJECT}/messages/0:{next(self._ids)}%{secrets.token_hex(8)}"}
        )
