"""``notify api --processes N`` (issue 10): N real API processes share one port under a supervisor. The
kernel spreads connections over them, ``/metrics`` sums all of them whichever answers, a process killed
outright is replaced with nothing it accepted lost, SIGTERM drains them all, and a deployment that cannot
start says so instead of restarting forever."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import asyncpg
import psutil
import pytest

from notify.devtools.processes import free_port
from tests.conftest import Stack
from tests.e2e.test_observability import scrape, value
from tests.support import NotifyProcess, eventually

SMS = {"channel": "sms", "recipient": "+14155550123", "content": "shared port"}
ROUTE = "/api/v1/notifications"


def children(supervisor: NotifyProcess) -> list[psutil.Process]:
    return psutil.Process(supervisor.pid).children()


def connections_on(process: psutil.Process, port: int, status: str) -> int:
    return sum(
        1 for c in process.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == status
    )


async def all_listening(supervisor: NotifyProcess, port: int, count: int) -> list[psutil.Process]:
    async def ready() -> list[psutil.Process] | None:
        found = children(supervisor)
        listening = [p for p in found if connections_on(p, port, psutil.CONN_LISTEN)]
        return listening if len(found) == count and len(listening) == count else None

    listening: list[psutil.Process] = await eventually(
        ready, timeout_s=30, what=f"{count} processes listening"
    )
    return listening


@pytest.mark.e2e
async def test_processes_share_the_port_sum_their_metrics_and_one_killed_is_replaced(stack: Stack) -> None:
    supervisor = await stack.start_api(api_processes=2)
    port = int(stack.api_url.rsplit(":", 1)[1])
    first, second = await all_listening(supervisor, port, 2)
    headers = {"Authorization": f"Bearer {stack.api_key}"}

    # Many clients, each on its own connection, kept open: the kernel hands connections to both processes.
    sessions = [aiohttp.ClientSession(headers=headers) for _ in range(24)]
    try:
        for session in sessions:
            async with session.post(f"{stack.api_url}{ROUTE}", json=SMS) as r:
                assert r.status == 201, await r.text()
        held = {p.pid: connections_on(p, port, psutil.CONN_ESTABLISHED) for p in (first, second)}
        assert all(held.values()), f"connections per process: {held}"
    finally:
        for session in sessions:
            await session.close()

    # Whichever process answers a scrape, it counts the requests of both.
    for _ in range(6):
        async with aiohttp.ClientSession() as fresh:
            samples = await scrape(fresh, stack.api_url)
        answered = value(samples, "notify_http_requests_total", method="POST", route=ROUTE, status="201")
        assert answered == len(sessions)

    # One process killed outright while clients keep posting: it is replaced; every 201 is stored.
    accepted: list[str] = []
    unanswered = 0  # requests cut off by the kill: each may or may not have been committed

    async def client() -> None:
        for _ in range(40):
            try:
                async with (
                    aiohttp.ClientSession(headers=headers) as session,  # a new connection each time
                    session.post(f"{stack.api_url}{ROUTE}", json=SMS) as r,
                ):
                    if r.status == 201:
                        accepted.append((await r.json())["id"])
            except aiohttp.ClientError:
                nonlocal unanswered
                unanswered += 1  # a connection the killed process held; the client would retry
            await asyncio.sleep(0.02)

    clients = [asyncio.create_task(client()) for _ in range(4)]
    await asyncio.sleep(0.3)
    os.kill(first.pid, signal.SIGKILL)
    await asyncio.gather(*clients)
    replaced = await all_listening(supervisor, port, 2)
    assert first.pid not in {p.pid for p in replaced} and second.pid in {p.pid for p in replaced}
    assert len(accepted) > 100
    conn = await asyncpg.connect(stack.database_url)
    try:
        stored = {str(r["id"]) for r in await conn.fetch("SELECT id FROM notifications")}
    finally:
        await conn.close()
    assert set(accepted) <= stored
    # Nothing else is stored but the earlier requests and, at most, those the kill cut off after their commit.
    assert len(sessions) + len(accepted) <= len(stored) <= len(sessions) + len(accepted) + unanswered
    assert "api process exited; starting another" in supervisor.log_text()

    # SIGTERM: every process drains and exits, then the supervisor, cleanly.
    survivors = children(supervisor)
    assert supervisor.terminate(timeout_s=60) == 0
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in survivors)


@pytest.mark.e2e
async def test_processes_that_cannot_start_stop_the_supervisor_with_their_error(stack: Stack) -> None:
    unreachable = f"postgresql://notify@127.0.0.1:{free_port()}/notify"
    supervisor = NotifyProcess(
        "api-processes",
        ["api", "--processes", "2"],
        stack.env(api_port=free_port(), database_url=unreachable),
        stack.log_dir,
    ).start()
    stack.processes.append(supervisor)
    assert await asyncio.to_thread(supervisor.proc.wait, 60) == 1  # type: ignore[union-attr]
    log = supervisor.log_text()
    assert "cannot reach PostgreSQL" in log and "api process failed to start" in log


@pytest.mark.e2e
async def test_processes_need_a_fixed_port(stack: Stack) -> None:
    supervisor = NotifyProcess(
        "api-port-0", ["api", "--processes", "2"], stack.env(api_port=0), stack.log_dir
    ).start()
    stack.processes.append(supervisor)
    assert await asyncio.to_thread(supervisor.proc.wait, 30) == 2  # type: ignore[union-attr]
    assert "needs a fixed port" in supervisor.log_text()
