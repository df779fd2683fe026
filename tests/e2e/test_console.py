"""The operator console in a real browser (Debian's chromium, driven by Playwright) against the real API,
worker, sandbox provider, broker and PostgreSQL. Each test leaves a screenshot in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from notify.devtools.devstack import create_api_key
from tests.conftest import Stack
from tests.support import eventually

ARTIFACTS = Path(os.environ.get("NOTIFY_TEST_ARTIFACTS", "test-artifacts"))
CHROMIUM = os.environ.get("NOTIFY_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FAST_WORKER = {"pause_refresh_s": 0.2, "recovery_interval_s": 0.2, "metrics_refresh_s": 1}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def browser_errors() -> list[str]:
    """Script errors and failed loads the page reported; a test that means to open an error page clears it."""
    return []


@pytest.fixture
async def page(
    browser: Browser, request: pytest.FixtureRequest, browser_errors: list[str]
) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await context.new_page()
    errors = browser_errors
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield p
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        await p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()
    # A script error or a refused resource (the CSP) is a bug even when the test's own checks passed.
    assert not errors, errors


async def sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/console")
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/console/activity"))


async def api(stack: Stack, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    async with stack.http.request(
        method, f"{stack.api_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        return r.status, await r.json()


async def send_sms(stack: Stack, key: str, content: str) -> str:
    status, body = await api(
        stack,
        "POST",
        "/api/v1/notifications",
        key,
        {"channel": "sms", "recipient": "+14155550123", "content": content},
    )
    assert status == 201, body
    return str(body["id"])


async def status_of(stack: Stack, key: str, nid: str) -> str:
    _, body = await api(stack, "GET", f"/api/v1/notifications/{nid}", key)
    return str(body["status"])


async def test_sign_in_and_see_a_notification_go_processing_then_delivered_without_a_reload(
    stack: Stack, page: Page
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST_WORKER)
    await sign_in(page, stack.api_url, stack.api_key)

    # The session is a cookie the page's scripts cannot read, sent to the console only, never a URL.
    cookie = next(c for c in await page.context.cookies() if c["name"] == "notify_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert stack.api_key not in cookie["value"] and stack.api_key not in page.url

    await expect(page.locator("#live-state")).to_have_text("live", timeout=15_000)
    await page.evaluate("window.__notReloaded = true")
    nid = await send_sms(stack, stack.api_key, "watch me")

    feed = page.locator("#feed")
    await expect(feed.locator(f'tr[data-id="{nid}"][data-status="processing"]')).to_have_count(
        1, timeout=20_000
    )
    await expect(feed.locator(f'tr[data-id="{nid}"][data-status="delivered"]')).to_have_count(
        1, timeout=20_000
    )
    assert await page.evaluate("window.__notReloaded === true")

    # The counts and the chart come from PostgreSQL: they catch up on their own.
    await expect(page.locator('[data-count="delivered"]')).to_have_text("1", timeout=15_000)

    # The detail page: fields, the full timeline from the database, the attempts ledger.
    await feed.locator(f'tr[data-id="{nid}"][data-status="delivered"] a').click()
    await expect(page.locator("h1")).to_contain_text(nid)
    timeline = page.locator("#timeline li")
    await expect(timeline).to_have_count(3)  # created pending, processing, delivered
    await expect(timeline.nth(2)).to_contain_text("delivered")
    await expect(page.get_by_role("cell", name="sandbox", exact=True)).to_have_count(1)
    await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # delivered: nothing to cancel

    _, events = await api(stack, "GET", f"/api/v1/notifications/{nid}/events", stack.api_key)
    assert [e["status"] for e in events["data"]] == ["pending", "processing", "delivered"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.goto(f"{stack.api_url}/console/activity")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))


async def test_a_failure_shows_in_dead_letters_and_a_replay_from_the_page_delivers_it(
    stack: Stack, page: Page
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST_WORKER)
    await stack.set_sandbox(error_rate=1.0, error_status=400)  # a permanent refusal: failed at once
    nid = await send_sms(stack, stack.api_key, "refused first")

    async def failed() -> bool:
        return await status_of(stack, stack.api_key, nid) == "failed"

    await eventually(failed, timeout_s=30, what="the notification failed")
    await sign_in(page, stack.api_url, stack.api_key)
    await page.get_by_role("link", name="Dead letters").click()
    await expect(page.locator("#matched")).to_have_text("1")
    row = page.locator("tr", has=page.locator(f'input[value$=":{nid}"]'))
    await expect(row).to_contain_text("HTTP 400")

    await page.get_by_label("Error contains").fill("no such error text")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#matched")).to_have_text("0")
    await page.get_by_label("Error contains").fill("400")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#matched")).to_have_text("1")

    await stack.set_sandbox(error_rate=0.0)
    await page.get_by_label(f"Select {nid}").check()
    await page.get_by_role("button", name="Replay selected").click()
    await expect(page.locator(".notice")).to_contain_text("Replayed")

    async def delivered() -> bool:
        return await status_of(stack, stack.api_key, nid) == "delivered"

    await eventually(delivered, timeout_s=30, what="the replayed notification delivered")
    await page.reload()
    await expect(page.locator("#matched")).to_have_text("0")


async def test_pausing_a_channel_from_the_page_holds_it_until_resumed(stack: Stack, page: Page) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST_WORKER)
    admin = await create_api_key(stack.database_url, name="ops", tenant_id="ops", admin=True)
    await sign_in(page, stack.api_url, admin)
    await page.get_by_role("link", name="Delivery").click()
    await page.get_by_role("button", name="Pause sms").click()
    await expect(page.locator(".notice")).to_contain_text("Paused")
    await expect(page.locator('tr[data-channel="sms"] .pause-state')).to_contain_text("paused")
    await asyncio.sleep(0.6)  # every worker re-reads pauses every 0.2 s

    nid = await send_sms(stack, stack.api_key, "held")
    await asyncio.sleep(2.0)
    assert await status_of(stack, stack.api_key, nid) == "pending"
    assert (await stack.sandbox("/messages"))["messages"] == []

    # The worker reports its breakers and rate limits; the page shows them.
    await page.reload()
    await expect(page.get_by_role("cell", name="sms:sandbox")).to_have_count(1, timeout=10_000)

    await page.get_by_role("button", name="Resume sms").click()
    await expect(page.locator(".notice")).to_contain_text("Resumed")

    async def delivered() -> bool:
        return await status_of(stack, stack.api_key, nid) == "delivered"

    await eventually(delivered, timeout_s=30, what="delivered after resume")


async def test_a_tenant_key_sees_only_its_tenant_and_an_admin_sees_every_tenant(
    stack: Stack, browser: Browser, page: Page, browser_errors: list[str]
) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker(**FAST_WORKER)
    tenant_b = await create_api_key(stack.database_url, name="b", tenant_id="tenant-b")
    admin = await create_api_key(stack.database_url, name="ops", tenant_id="ops", admin=True)
    a_id = await send_sms(stack, stack.api_key, "for a")
    b_id = await send_sms(stack, tenant_b, "for b")

    await sign_in(page, stack.api_url, tenant_b)
    await expect(page.locator("#live-state")).to_have_text("live", timeout=15_000)
    recent = page.locator("#recent-title + table")
    await expect(recent.locator(f'tr[data-id="{b_id}"]')).to_have_count(1)
    await expect(recent.locator(f'tr[data-id="{a_id}"]')).to_have_count(0)
    await expect(page.get_by_label("Tenant")).to_have_count(0)  # no tenant filter for a tenant key

    a_live = await send_sms(stack, stack.api_key, "a, live")
    b_live = await send_sms(stack, tenant_b, "b, live")
    feed = page.locator("#feed")
    await expect(feed.locator(f'tr[data-id="{b_live}"][data-status="delivered"]')).to_have_count(
        1, timeout=20_000
    )
    await expect(feed.locator(f'tr[data-id="{a_live}"]')).to_have_count(0)

    # Another tenant's notification does not exist for this key, whatever the URL says.
    response = await page.goto(f"{stack.api_url}/console/notifications/{a_id}?tenant=tenant-a")
    assert response is not None and response.status == 404
    response = await page.goto(f"{stack.api_url}/console/keys")
    assert response is not None and response.status == 403
    assert all("Failed to load resource" in e for e in browser_errors), browser_errors
    browser_errors.clear()  # the two error pages just opened on purpose

    # An admin sees both tenants, and narrows to one with the filter.
    context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    try:
        phone = await context.new_page()
        await sign_in(phone, stack.api_url, admin)
        recent = phone.locator("#recent-title + table")
        await expect(recent.locator(f'tr[data-id="{a_id}"]')).to_have_count(1)
        await expect(recent.locator(f'tr[data-id="{b_id}"]')).to_have_count(1)
        await phone.get_by_label("Tenant").select_option("tenant-b")
        await phone.get_by_role("button", name="Filter").click()
        await expect(recent.locator(f'tr[data-id="{a_id}"]')).to_have_count(0)
        await expect(recent.locator(f'tr[data-id="{b_id}"]')).to_have_count(1)
        ARTIFACTS.mkdir(exist_ok=True)
        await phone.screenshot(path=str(ARTIFACTS / "console-admin-phone.png"), full_page=True)
    finally:
        await context.close()


async def test_templates_preview_live_with_inline_errors_and_an_admin_manages_keys(
    stack: Stack, page: Page
) -> None:
    await stack.start_api()
    admin = await create_api_key(stack.database_url, name="ops", tenant_id="ops", admin=True)
    await sign_in(page, stack.api_url, admin)

    await page.get_by_role("link", name="Templates").click()
    await expect(page.locator(".empty")).to_contain_text("No templates yet")
    await page.get_by_role("link", name="New template").click()
    await page.get_by_label("Name").fill("welcome")
    await page.get_by_label("Body").fill("Hello {{ name ")
    await expect(page.locator("#err-body")).not_to_be_empty(timeout=10_000)
    await page.get_by_label("Body").fill("Hello {{ name }}, your code is {{ code }}")
    await expect(page.locator("#err-body")).to_be_empty(timeout=10_000)
    await expect(page.locator("#err-variables")).to_contain_text("missing variable 'code'")
    await page.get_by_label("Sample variables (JSON)").fill('{"name": "Ada", "code": "123456"}')
    await expect(page.locator("#preview-body")).to_have_text("Hello Ada, your code is 123456", timeout=10_000)
    await expect(page.locator("#err-variables")).to_be_empty()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".notice")).to_contain_text("Template saved")
    await expect(page.get_by_role("link", name="welcome")).to_have_count(1)

    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name").fill("billing")
    await page.get_by_label("Tenant").last.fill("tenant-c")
    await page.get_by_role("button", name="Create key").click()
    secret = (await page.locator("#new-secret").text_content() or "").strip()
    assert secret.startswith("ntf_")
    status, _ = await api(stack, "GET", "/api/v1/notifications", secret)
    assert status == 200
    await page.goto(f"{stack.api_url}/console/keys")
    await expect(page.locator("#new-secret")).to_have_count(0)  # shown once
    await page.locator("tr", has_text="billing").get_by_role("button", name="Revoke").click()
    await expect(page.locator(".notice")).to_contain_text("revoked")

    async def refused() -> bool:
        status, _ = await api(stack, "GET", "/api/v1/notifications", secret)
        return status == 401

    await eventually(refused, timeout_s=15, what="the revoked key refused")


async def test_forms_without_the_session_csrf_token_or_from_another_origin_are_refused(stack: Stack) -> None:
    await stack.start_api()
    admin = await create_api_key(stack.database_url, name="ops", tenant_id="ops", admin=True)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        base = stack.api_url
        async with http.post(
            f"{base}/console/sign-in", data={"key": "ntf_" + "x" * 43}, allow_redirects=False
        ) as r:
            assert r.status == 401 and "unknown or revoked" in await r.text()
        async with http.post(f"{base}/console/sign-in", data={"key": admin}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{base}/console/delivery") as r:
            assert r.status == 200
            html = await r.text()
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        # No token, a wrong token, or the right token from another site's page: refused, nothing paused.
        for data, headers in (
            ({"action": "pause", "channel": "sms"}, {}),
            ({"action": "pause", "channel": "sms", "csrf": "forged"}, {}),
            ({"action": "pause", "channel": "sms", "csrf": token[1]}, {"Origin": "https://evil.example"}),
        ):
            async with http.post(
                f"{base}/console/delivery", data=data, headers=headers, allow_redirects=False
            ) as r:
                assert r.status == 403, (data, headers, r.status)
        status, state = await api(stack, "GET", "/api/v1/delivery", admin)
        assert status == 200 and state["global"]["paused"] is False
        async with http.post(
            f"{base}/console/delivery",
            data={"action": "pause", "channel": "sms", "csrf": token[1]},
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        status, state = await api(stack, "GET", "/api/v1/delivery", admin)
        assert state["global"]["channels"]["sms"]["paused"] is True, state
        assert state["global"]["channels"]["email"]["paused"] is False, state
        # A redirect after sign-in goes only to the console itself.
        async with http.post(
            f"{base}/console/sign-in", data={"key": admin, "next": "//evil.example/x"}, allow_redirects=False
        ) as r:
            assert r.headers["Location"] == "/console/activity"
