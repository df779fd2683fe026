"""A stand-in for Twilio's Messages API, speaking its documented wire format (the real one is unreachable
from the machines the tests run on): ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form
fields ``To``, ``Body``, ``From`` or ``MessagingServiceSid``, optional ``StatusCallback``; HTTP Basic with
the account SID and auth token (or an API key); answers 201 with the message resource, and errors as
``{"code", "message", "more_info", "status"}``. Twilio's test numbers behave as documented: +15005550001
is invalid (21211), +15005550009 cannot receive SMS (21614)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

INVALID_NUMBER = "+15005550001"
NOT_MOBILE = "+15005550009"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token"
API_KEY_SID = "SK" + "2" * 32
API_KEY_SECRET = "twilio-api-key-secret"


@dataclass
class TwilioStandIn:
    messages: list[dict[str, str]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before succeeding again
    calls: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create_message)
        return app

    @staticmethod
    def error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) in {
            (ACCOUNT_SID, AUTH_TOKEN),
            (API_KEY_SID, API_KEY_SECRET),
        } and request.match_info["sid"] == ACCOUNT_SID

    async def create_message(self, request: web.Request) -> web.Response:
        self.calls += 1
        if not self.authorised(request):
            return self.error(401, 20003, "Authenticate")
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status == 429:
                return self.error(429, 20429, "Too Many Requests")
            return self.error(status, 20500, "An internal server error has occurred")
        form = {k: str(v) for k, v in (await request.post()).items()}
        to = form.get("To")
        if not to:
            return self.error(400, 21604, "A 'To' phone number is required.")
        if "From" not in form and "MessagingServiceSid" not in form:
            return self.error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if "Body" not in form:
            return self.error(400, 21602, "Message body is required.")
        if to == INVALID_NUMBER:
            return self.error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == NOT_MOBILE:
            return self.error(400, 21614, f"'To' number {to} is not a valid mobile number")
        sid = "SM" + uuid.uuid4().hex
        self.messages.append({"sid": sid, **form})
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": ACCOUNT_SID,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form["Body"],
            "status": "accepted" if "MessagingServiceSid" in form else "queued",
            "num_segments": "1",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        }
        return web.json_response(resource, status=201)


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioStandIn, str]]:
    """The stand-in, served on loopback: (it, its base URL)."""
    standin = TwilioStandIn()
    async with TestServer(standin.app(), host="127.0.0.1") as server:
        yield standin, str(server.make_url("")).rstrip("/")
