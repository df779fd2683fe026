"""Email through the real worker to a real SMTP server (STARTTLS, AUTH): delivered after failing over from a
relay that is down, a 5xx reply dead-lettered, a 4xx reply retried until the retries run out."""

from __future__ import annotations

import json
from typing import Any

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.smtp_server import PASSWORD, USER, SmtpServer
from tests.support import eventually


async def post_email(stack: Stack, recipient: str) -> str:
    status, body = await stack.post(
        {"channel": "email", "recipient": recipient, "subject": "Hi", "content": "Hello from notify"}
    )
    assert status == 201, body
    return str(body["id"])


async def attempts(stack: Stack, notification_id: str) -> list[dict[str, Any]]:
    url = f"{stack.api_url}/api/v1/notifications/{notification_id}/attempts"
    async with stack.http.get(url) as r:
        assert r.status == 200
        return list((await r.json())["data"])


async def test_email_over_smtp_fails_over_retries_and_dead_letters(
    stack: Stack, smtp_server: SmtpServer
) -> None:
    down = {"type": "smtp", "name": "down", "host": "127.0.0.1", "port": free_port(), "tls": "none"}
    relay = {
        "type": "smtp",
        "name": "relay",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "username": USER,
        "password": PASSWORD,
        "ca_file": smtp_server.ca_file,
    }
    providers = {
        "email": [{**down, "sender": "notify@example.com"}, {**relay, "sender": "notify@example.com"}]
    }
    await stack.start_api()
    await stack.start_worker(providers=json.dumps(providers), retry_base_s="0.2", max_retries_normal="1")

    delivered = await post_email(stack, "ada@example.com")
    refused = await post_email(stack, "nobody@example.com")
    busy = await post_email(stack, "busy@example.com")

    async def finished() -> dict[str, dict[str, Any]] | None:
        found = {n: await stack.get(n) for n in (delivered, refused, busy)}
        return found if all(f["status"] in ("delivered", "failed") for f in found.values()) else None

    final = await eventually(finished, timeout_s=60, what="the three emails finished")
    assert final[delivered]["status"] == "delivered" and final[delivered]["provider"] == "relay"
    assert final[delivered]["provider_message_id"] == f"{delivered}@example.com"
    ledger = await attempts(stack, delivered)
    assert [(a["provider"], a["outcome"]) for a in ledger] == [("down", "transient"), ("relay", "delivered")]

    assert final[refused]["status"] == "failed"
    assert "SMTP 550" in final[refused]["error_message"]
    assert [a["outcome"] for a in await attempts(stack, refused)][-1] == "permanent"

    assert final[busy]["status"] == "failed"  # 451 each time, until the one retry was used up
    assert "SMTP 451" in final[busy]["error_message"]
    busy_ledger = await attempts(stack, busy)
    assert {a["attempt"] for a in busy_ledger} == {1, 2}
    assert all(a["outcome"] == "transient" for a in busy_ledger)

    [(received, _)] = smtp_server.mailbox.messages  # exactly one email arrived: the delivered one
    assert received["Message-ID"] == f"<{delivered}@example.com>"
    assert received["To"] == "ada@example.com"
