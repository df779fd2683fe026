"""End to end for the public API (issue 4): API keys and tenants, idempotency, batches."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp

from notify.devtools.devstack import create_api_key
from tests.conftest import Stack
from tests.e2e.test_walking_skeleton import wait_all_status
from tests.support import eventually

SMS = {"channel": "sms", "recipient": "+14155550123", "content": "hi"}


async def test_api_key_is_required_and_tenants_are_isolated(stack: Stack) -> None:
    await stack.start_api()
    base = f"{stack.api_url}/api/v1/notifications"
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, {"Authorization": "Bearer ntf_not-a-key"}, {"Authorization": "Basic abc"}):
            async with anonymous.post(base, json=SMS, headers=headers) as r:
                body = await r.json()
                assert (r.status, body["code"]) == (401, "unauthorized"), headers
                assert r.headers["WWW-Authenticate"] == "Bearer"
        for open_path in ("/health", "/health/ready"):
            async with anonymous.get(f"{stack.api_url}{open_path}") as r:
                assert r.status == 200

    mine = await stack.send_sms("mine")
    other_key = await create_api_key(stack.database_url, name="other", tenant_id="tenant-b")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {other_key}"}) as other:
        async with other.get(f"{base}/{mine['id']}") as r:
            assert r.status == 404
        async with other.patch(f"{base}/{mine['id']}/cancel") as r:
            assert r.status == 404
        for read in ("attempts", "timeline", "receipts"):
            async with other.get(f"{base}/{mine['id']}/{read}") as r:
                assert r.status == 404, read
        async with other.post(f"{base}/{mine['id']}/replay") as r:
            assert r.status == 404
        async with other.get(base) as r:
            assert (await r.json())["data"] == []
        async with other.post(base, json=SMS) as r:
            assert r.status == 201
    status, listed = 0, None
    async with stack.http.get(base) as r:
        status, listed = r.status, await r.json()
    assert status == 200
    assert [n["id"] for n in listed["data"]] == [mine["id"]]


async def test_metadata_round_trips_exactly_even_past_what_a_64_bit_integer_holds(stack: Stack) -> None:
    """JSON numbers have no size limit: a client's metadata is answered as it was sent (the fast encoder
    stops at 64 bits; the answer must not be a 500 then)."""
    await stack.start_api()
    metadata = {"order": 2**70, "negative": -(2**64), "nested": {"unicode": "é ✓", "list": [1, 2.5, None]}}
    status, created = await stack.post({**SMS, "metadata": metadata})
    assert status == 201, created
    assert created["metadata"] == metadata
    assert (await stack.get(created["id"]))["metadata"] == metadata


async def test_revoked_key_is_refused(stack: Stack) -> None:
    await stack.start_api(api_key_cache_s=0)
    env = stack.env()
    create = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notify",
        "keys",
        "create",
        "--name",
        "short-lived",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await create.communicate()
    assert create.returncode == 0, err
    secret = out.decode().strip()
    key_id = err.decode().split("id=")[1].split()[0]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as http:
        async with http.get(f"{stack.api_url}/api/v1/notifications") as r:
            assert r.status == 200
        # A browser's way onto the live stream: a single-use token, not the key in the URL.
        async with http.post(f"{stack.api_url}/api/v1/live/tokens") as r:
            assert r.status == 201
            token = await r.json()
        ws_url = stack.api_url.replace("http", "ws", 1)
        async with aiohttp.ClientSession() as browser:
            live = await browser.ws_connect(f"{ws_url}{token['url']}")
            async with browser.get(f"{stack.api_url}{token['url']}") as again:
                assert again.status == 401  # used once already
            revoke = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notify", "keys", "revoke", key_id, env=env
            )
            assert await revoke.wait() == 0
            async with http.get(f"{stack.api_url}/api/v1/notifications") as r:
                assert r.status == 401
            # The stream the revoked key opened does not outlive it.
            message = await asyncio.wait_for(live.receive(), 30)
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008), message


async def test_per_key_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(stack: Stack) -> None:
    await stack.start_api(api_key_rate_limit_per_s=5)
    statuses: list[int] = []
    retry_after: set[str] = set()
    for _ in range(20):
        async with stack.http.get(f"{stack.api_url}/api/v1/notifications") as r:
            statuses.append(r.status)
            if r.status == 429:
                retry_after.add(r.headers["Retry-After"])
                assert (await r.json())["code"] == "rate_limited"
                limits = (
                    r.headers["RateLimit-Limit"],
                    r.headers["RateLimit-Remaining"],
                    r.headers["RateLimit-Reset"],
                )
                assert limits == ("5", "0", r.headers["Retry-After"])
    assert statuses.count(200) >= 5
    assert 429 in statuses
    assert retry_after == {"1"}


async def test_idempotency_key_replays_and_conflicts_even_under_fifty_concurrent_duplicates(
    stack: Stack,
) -> None:
    await stack.start_api()

    async def post(body: dict[str, Any], key: str) -> tuple[int, dict[str, Any], str | None]:
        async with stack.http.post(
            f"{stack.api_url}/api/v1/notifications", json=body, headers={"Idempotency-Key": key}
        ) as r:
            return r.status, await r.json(), r.headers.get("Idempotent-Replayed")

    results = await asyncio.gather(*(post(SMS, "order-42") for _ in range(50)))
    assert sorted(s for s, _, _ in results).count(201) == 1
    assert {s for s, _, _ in results} == {200, 201}
    assert len({b["id"] for _, b, _ in results}) == 1
    assert all(replayed == "true" for s, _, replayed in results if s == 200)
    assert (await stack.statuses()) == {"pending": 1}
    status, body, _ = await post({**SMS, "content": "changed"}, "order-42")
    assert (status, body["code"]) == (409, "conflict")
    status, body = await stack.post({**SMS, "idempotency_key": "order-42"})  # the field works like the header
    assert status == 200


async def test_batch_all_or_nothing_then_delivered_with_live_counts(stack: Stack) -> None:
    await stack.start_sandbox("--latency-ms", "5")
    await stack.start_api()
    bad = [SMS, {**SMS, "recipient": "+1"}, SMS, {"channel": "email", "recipient": "x", "content": "y"}]
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": bad}
    ) as r:
        body = await r.json()
    assert r.status == 400
    assert [d["field"] for d in body["details"]] == [
        "notifications[1].recipient",
        "notifications[3].recipient",
    ]
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": [{**SMS, "colour": 1}]}
    ) as r:
        assert [d["field"] for d in (await r.json())["details"]] == ["notifications[0].colour"]
    for size in (0, 1001):
        async with stack.http.post(
            f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": [SMS] * size}
        ) as r:
            assert r.status == 400, size
    assert await stack.statuses() == {}

    items = [{**SMS, "content": f"item {i}"} for i in range(1000)]
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": items}
    ) as r:
        created = await r.json()
        assert r.status == 201, created
    batch_id = created["batch"]["id"]
    assert len(created["notifications"]) == 1000
    assert [n["content"] for n in created["notifications"][:3]] == ["item 0", "item 1", "item 2"]

    async def batch() -> dict[str, Any]:
        async with stack.http.get(f"{stack.api_url}/api/v1/batches/{batch_id}") as r:
            return await r.json()  # type: ignore[no-any-return]

    async def counts() -> dict[str, int]:
        return (await batch())["counts"]  # type: ignore[no-any-return]

    summary = ("total_count", "pending_count", "delivered_count", "failed_count", "cancelled_count")
    waiting = await batch()
    assert waiting["counts"]["pending"] == 1000
    assert [waiting[k] for k in summary] == [1000, 1000, 0, 0, 0]  # the seed API's fields, for its clients
    await stack.start_worker()

    async def all_delivered() -> bool:
        c = await counts()
        assert sum(c.values()) == 1000  # stays consistent while workers deliver
        return c["delivered"] == 1000

    await eventually(all_delivered, timeout_s=60, interval_s=0.05, what="the batch delivered")
    await wait_all_status(stack, 1000)
    done = await batch()
    assert [done[k] for k in summary] == [1000, 0, 1000, 0, 0]
    async with stack.http.get(f"{stack.api_url}/api/v1/batches/{batch_id}/notifications?page_size=100") as r:
        page = await r.json()
    assert len(page["data"]) == 100 and page["next_cursor"]
    async with stack.http.get(f"{stack.api_url}/api/v1/batches/00000000-0000-7000-8000-000000000000") as r:
        assert r.status == 404
    other_key = await create_api_key(stack.database_url, name="other", tenant_id="tenant-b")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {other_key}"}) as other:
        for path in (f"/api/v1/batches/{batch_id}", f"/api/v1/batches/{batch_id}/notifications"):
            async with other.get(f"{stack.api_url}{path}") as r:
                assert r.status == 404, path  # another tenant's batch does not exist for this key


async def test_templates_render_into_notifications_and_stay_fixed_once_accepted(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    base = f"{stack.api_url}/api/v1/templates"
    body = {"name": "otp", "channel": "sms", "body": "Hi {{ name }}, your code is {{ code }}."}
    async with stack.http.post(base, json=body) as r:
        template = await r.json()
        assert r.status == 201, template
    async with stack.http.post(base, json={**body, "name": "broken", "body": "line one\n{% if %}"}) as r:
        err = await r.json()
        assert (r.status, err["details"][0]["field"]) == (400, "body")
        assert "line 2" in err["details"][0]["message"]
    async with stack.http.post(base, json=body) as r:
        assert r.status == 409  # names are unique per tenant

    status, missing = await stack.post(
        {
            "channel": "sms",
            "recipient": "+14155550123",
            "template_id": template["id"],
            "template_variables": {"name": "Ann"},
        }
    )
    assert status == 400
    assert "'code'" in missing["details"][0]["message"]
    status, wrong = await stack.post(
        {
            "channel": "email",
            "recipient": "a@example.com",
            "template_id": template["id"],
            "template_variables": {"name": "A", "code": 1},
        }
    )
    assert (status, wrong["details"][0]["code"]) == (400, "channel_mismatch")

    status, sent = await stack.post(
        {
            "channel": "sms",
            "recipient": "+14155550123",
            "template_id": template["id"],
            "template_variables": {"name": "Ann", "code": "123456"},
        }
    )
    assert status == 201, sent
    assert sent["content"] == "Hi Ann, your code is 123456."
    async with stack.http.put(f"{base}/{template['id']}", json={**body, "body": "changed {{ name }}"}) as r:
        assert r.status == 200
    async with stack.http.delete(f"{base}/{template['id']}") as r:
        assert r.status == 204

    async def delivered() -> bool:
        return (await stack.get(sent["id"]))["status"] == "delivered"

    await eventually(delivered, what="the templated notification delivered")
    received = await stack.sandbox(f"/messages?idempotency_key={sent['id']}")
    assert received["messages"][0]["body"]["content"] == "Hi Ann, your code is 123456."
    async with stack.http.get(f"{base}/{template['id']}") as r:
        assert r.status == 404


async def test_erasing_a_recipient_removes_its_notifications_for_that_tenant_only(stack: Stack) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    other_tenant = await create_api_key(stack.database_url, name="other", tenant_id="tenant-b")
    erased_ids = [(await stack.send_sms(f"code {i}"))["id"] for i in range(3)]  # +14155550123
    kept = await stack.send_sms("keep me", recipient="+14155550199")
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications",
        json={"channel": "sms", "recipient": "+14155550123", "content": "tenant b's"},
        headers={"Authorization": f"Bearer {other_tenant}"},
    ) as r:
        assert r.status == 201
        theirs = (await r.json())["id"]
    await wait_all_status(stack, 5)

    # As the caller wrote it, not as stored (E.164): the erasure normalises it the same way.
    async with stack.http.post(
        f"{stack.api_url}/api/v1/recipients/erase", json={"recipient": "+1 (415) 555-0123"}
    ) as r:
        assert r.status == 200, await r.text()
        erased = await r.json()
    assert erased["notifications"] == 3
    assert erased["attempts"] == 3 and erased["status_changes"] >= 6  # each: processing, delivered
    for notification_id in erased_ids:
        async with stack.http.get(f"{stack.api_url}/api/v1/notifications/{notification_id}") as r:
            assert r.status == 404
    assert (await stack.get(kept["id"]))["status"] == "delivered"
    async with stack.http.get(
        f"{stack.api_url}/api/v1/notifications/{theirs}", headers={"Authorization": f"Bearer {other_tenant}"}
    ) as r:
        assert r.status == 200  # another tenant's, to the same number: not this tenant's to erase
    async with stack.http.post(f"{stack.api_url}/api/v1/recipients/erase", json={"recipient": ""}) as r:
        assert r.status == 400 and (await r.json())["code"] == "validation_error"
