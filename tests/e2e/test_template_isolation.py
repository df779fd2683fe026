"""A template cannot freeze the API: rendering happens in worker processes, capped in memory and killed past
their time, while the API's event loop goes on answering."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import pytest
from prometheus_client import REGISTRY

from notify.adapters.templates.isolated import IsolatedTemplateEngine
from notify.domain.errors import ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import Template
from tests.conftest import Stack


def doubling(n: int) -> str:
    """Each line doubles a list; printing it at the end costs 2**n elements of time and memory."""
    return "{% set a = [1] %}" + "{% set a = [a, a] %}" * n + "{{ a }}"


def killed() -> float:
    return REGISTRY.get_sample_value("notify_template_workers_killed_total") or 0.0


def template(body: str) -> Template:
    now = datetime.now(UTC)
    return Template(uuid4(), "t", "bomb", Channel.EMAIL, body, None, now, now)


@pytest.mark.parametrize("n", [24, 30])  # seconds of work (21 could finish in 1 s); gigabytes of memory
async def test_a_render_too_expensive_in_time_or_memory_is_refused_and_the_next_one_works(n: int) -> None:
    engine = IsolatedTemplateEngine(workers=1, time_limit_s=1.0, memory_mib=256)
    await engine.start()
    killed_before = killed()
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        running = asyncio.create_task(ticker())
        with pytest.raises(ValidationFailed) as refused:
            await engine.render(template(doubling(n)), {}, "notifications[3].")
        running.cancel()
        [error] = refused.value.details
        assert (error.field, error.code) == ("notifications[3].template_id", "template_too_expensive")
        assert killed() == killed_before + 1  # counted for operators
        assert ticks >= 10  # the event loop went on while the worker rendered
        # The worker was replaced: the next render works.
        assert await engine.render(template("Hi {{ name }}"), {"name": "Ada"}) == ("Hi Ada", None)
    finally:
        await engine.close()


async def test_the_api_keeps_answering_while_a_template_bomb_renders(stack: Stack) -> None:
    await stack.start_api(template_render_timeout_s=1)
    async with stack.http.post(
        f"{stack.api_url}/api/v1/templates",
        json={"name": "bomb", "channel": "email", "body": doubling(24)},
    ) as r:
        assert r.status == 201, await r.text()  # it compiles: its cost only shows when it runs
        bomb = (await r.json())["id"]
    sms = {"channel": "email", "recipient": "a@example.com", "template_id": bomb, "template_variables": {}}
    health_answers = 0
    done = asyncio.Event()

    async def health() -> None:
        nonlocal health_answers
        async with aiohttp.ClientSession() as http:
            while not done.is_set():
                async with http.get(f"{stack.api_url}/health") as r:
                    assert r.status == 200
                    health_answers += 1
                await asyncio.sleep(0.02)

    pinging = asyncio.create_task(health())
    await asyncio.sleep(0.1)
    before = health_answers
    status, error = await stack.post(sms)
    during = health_answers - before
    done.set()
    await pinging
    assert (status, error["code"], error["details"][0]["code"]) == (
        400,
        "validation_error",
        "template_too_expensive",
    )
    assert during >= 5, during  # /health was answered all along the render
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": [sms, sms, sms]}
    ) as r:
        answer = await r.json()
    assert r.status == 400 and answer["details"][0]["field"] == "notifications[0].template_id", answer
