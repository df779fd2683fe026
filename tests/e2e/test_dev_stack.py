"""`notify dev` (what `scripts/dev` runs) brings up a working stack and Ctrl-C takes it all down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from notify.devtools.processes import free_port
from tests.conftest import _with_db
from tests.process_guard import Leftover, kill_all, marked_processes
from tests.support import REPO, die_with_parent, eventually, wait_http_ok


async def test_dev_stack_delivers_a_post_and_stops_on_ctrl_c(
    postgres_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db_name = f"notify_dev_{uuid.uuid4().hex[:10]}"
    api_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    env["NOTIFY_DATABASE_URL"] = _with_db(postgres_server, db_name)
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        die_with_parent(
            [
                sys.executable,
                "-m",
                "notify",
                "dev",
                "--api-port",
                str(api_port),
                "--sandbox-port",
                str(sandbox_port),
            ]
        ),
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{api_port}"

    def started_by_this_test() -> list[Leftover]:
        return [p for p in marked_processes() if p.owner == request.node.nodeid]

    try:
        await wait_http_ok(f"{api}/health/ready", timeout_s=60)

        async def banner_printed() -> bool:
            return "export NOTIFY_KEY=" in (tmp_path / "dev.log").read_text()

        await eventually(banner_printed, what="the banner with the API key")
        key = next(
            line.split("export NOTIFY_KEY=")[1].strip()
            for line in (tmp_path / "dev.log").read_text().splitlines()
            if "export NOTIFY_KEY=" in line
        )
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            body = {"channel": "sms", "recipient": "+14155550123", "content": "Hello"}
            async with http.post(f"{api}/api/v1/notifications", json=body) as r:
                assert r.status == 201
                created = await r.json()

            async def delivered() -> bool:
                async with http.get(f"{api}/api/v1/notifications/{created['id']}") as r:
                    return (await r.json())["status"] == "delivered"  # type: ignore[no-any-return]

            await eventually(delivered, timeout_s=30, what="delivered through the dev stack")
            async with http.get(f"http://127.0.0.1:{sandbox_port}/stats") as r:
                assert (await r.json())["accepted"] == 1
        os.kill(proc.pid, signal.SIGINT)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        # Ctrl-C took down everything it started, though each child runs in a session of its own.
        assert started_by_this_test() == [], started_by_this_test()
        text = (tmp_path / "dev.log").read_text()
        assert "notify is up." in text
        assert "consumer stopped" in text
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as http, http.get(f"{api}/health") as r:
                pass
    finally:
        if proc.poll() is None:  # the test failed before the Ctrl-C: stop it the way a user would
            os.kill(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        kill_all(started_by_this_test())  # whatever is left, however the test ended
        proc.wait(10)
        log.close()
        print((tmp_path / "dev.log").read_text()[-3000:])
        admin = await asyncpg.connect(postgres_server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        finally:
            await admin.close()
    assert REPO.exists()
