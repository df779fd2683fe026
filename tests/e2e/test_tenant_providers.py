"""A tenant brings its own provider credentials: set through the API (stored encrypted, never sent back),
used by the real worker for that tenant's notifications only, dropped to fall back to the operator's."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from notify.devtools.devstack import create_api_key
from tests.conftest import Stack
from tests.standins.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn
from tests.support import eventually

REFRESH_S = 0.2


async def test_a_tenants_own_twilio_carries_its_sms_and_no_one_elses(
    stack: Stack, twilio: tuple[TwilioStandIn, str]
) -> None:
    standin, base_url = twilio
    secrets = {
        "provider_credentials_key": Fernet.generate_key().decode(),
        "tenant_providers_refresh_s": "0.2",
    }
    await stack.start_sandbox()  # the operator's provider
    await stack.start_api(**secrets)
    await stack.start_worker(**secrets)
    other_key = await create_api_key(stack.database_url, name="b", tenant_id="tenant-b")
    providers_url = f"{stack.api_url}/api/v1/providers"
    own: dict[str, Any] = {
        "type": "twilio",
        "name": "own-twilio",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": base_url,
    }

    # Its timeouts must fit in a delivery round (the operator's: 5 s here), or a worker's lease could run out.
    async with stack.http.put(providers_url, json={"channel": "sms", "providers": [own]}) as r:
        assert r.status == 400 and (await r.json())["details"][0]["code"] == "too_slow"
    own["timeout_s"] = 5
    async with stack.http.put(providers_url, json={"channel": "sms", "providers": [own]}) as r:
        assert r.status == 200, await r.text()
        answer = await r.text()
    assert AUTH_TOKEN not in answer  # never sent back
    async with stack.http.get(providers_url) as r:
        state = await r.json()
    assert state["tenant_id"] == "tenant-a" and state["email"] is None
    assert state["sms"]["providers"] == [{"name": "own-twilio", "type": "twilio"}]
    database = await asyncpg.connect(stack.database_url)
    try:
        raw = await database.fetchval("SELECT providers FROM tenant_providers")
    finally:
        await database.close()
    assert AUTH_TOKEN.encode() not in bytes(raw)  # encrypted at rest

    async def delivered_by(notification_id: str, headers: dict[str, str] | None = None) -> str:
        async def done() -> str | None:
            async with stack.http.get(
                f"{stack.api_url}/api/v1/notifications/{notification_id}", headers=headers
            ) as r:
                n: dict[str, Any] = await r.json()
            return str(n["provider"]) if n["status"] == "delivered" else None

        return str(await eventually(done, timeout_s=30, what=f"{notification_id} delivered"))

    mine = (await stack.send_sms("from tenant a"))["id"]
    b_headers = {"Authorization": f"Bearer {other_key}"}
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications",
        json={"channel": "sms", "recipient": "+14155550123", "content": "from tenant b"},
        headers=b_headers,
    ) as r:
        assert r.status == 201
        theirs = (await r.json())["id"]
    assert await delivered_by(mine) == "own-twilio"
    assert await delivered_by(theirs, b_headers) == "sandbox"
    assert [m["Body"] for m in standin.messages] == ["from tenant a"]

    # Tenant b may not touch tenant a's providers.
    async with stack.http.get(providers_url, params={"tenant_id": "tenant-a"}, headers=b_headers) as r:
        assert r.status == 403
    # A bad entry is a 400 naming the field, without echoing what was sent.
    bad = {"channel": "sms", "providers": [{**own, "account_sid": "nope", "auth_token": "hunter2-secret"}]}
    async with stack.http.put(providers_url, json=bad) as r:
        assert r.status == 400
        text = await r.text()
    assert "account_sid" in text and "hunter2" not in text

    async with stack.http.delete(providers_url, params={"channel": "sms"}) as r:
        assert r.status == 204
    await asyncio.sleep(3 * REFRESH_S)  # workers pick a change up within NOTIFY_TENANT_PROVIDERS_REFRESH_S
    again = (await stack.send_sms("back to the operator"))["id"]
    assert await delivered_by(again) == "sandbox"
    assert len(standin.messages) == 1


async def test_without_a_credentials_key_tenants_cannot_bring_providers(stack: Stack) -> None:
    await stack.start_api()
    async with stack.http.get(f"{stack.api_url}/api/v1/providers") as r:
        assert r.status == 403
        assert "NOTIFY_PROVIDER_CREDENTIALS_KEY" in (await r.json())["error"]
