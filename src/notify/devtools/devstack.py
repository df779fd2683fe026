"""``notify dev``: the whole service on one machine, in one command.

PostgreSQL (the configured server if it answers, else an embedded one), a Tansu broker on a free port,
migrations, topics, the sandbox provider, the API and the worker. Prints the URLs; Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from notify.adapters.clock import SystemClock
from notify.adapters.kafka.topics import ensure_topics
from notify.adapters.postgres.keys import PgApiKeyStore
from notify.adapters.postgres.migrate import apply_migrations, ensure_database
from notify.adapters.postgres.pool import create_pool
from notify.app.auth import KeyService
from notify.devtools.postgres import EmbeddedPostgres, ensure_postgres
from notify.devtools.processes import free_port
from notify.devtools.tansu import TansuBroker
from notify.domain.keys import KeyScope
from notify.settings import Settings

WORKDIR = Path(".notify-dev")


def _port_or_free(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


async def create_api_key(database_url: str, *, name: str, tenant_id: str, admin: bool = False) -> str:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        scope = KeyScope.ADMIN if admin else KeyScope.TENANT
        _, secret = await KeyService(PgApiKeyStore(pool), SystemClock()).create(name, tenant_id, scope=scope)
        return secret
    finally:
        await pool.close()


def _say(message: str) -> None:
    print(f"[notify dev] {message}", file=sys.stderr, flush=True)


async def _wait_ok(url: str, processes: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a notify process exited during startup (see its log above)")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


class DevStack:
    def __init__(self, settings: Settings, api_port: int, sandbox_port: int) -> None:
        self.settings = settings
        self.api_port = _port_or_free(api_port)
        self.sandbox_port = _port_or_free(sandbox_port)
        self.worker_port = _port_or_free(settings.worker_http_port)
        self.broker = TansuBroker()
        self.embedded: EmbeddedPostgres | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.database_url = settings.database_url.get_secret_value()
        self.api_key = ""
        self.admin_key = ""

    async def start(self) -> None:
        WORKDIR.mkdir(exist_ok=True)
        self.database_url, self.embedded = await ensure_postgres(self.database_url, WORKDIR / "pg")
        _say("PostgreSQL: " + ("embedded server started" if self.embedded else "using the running server"))
        await ensure_database(self.database_url)
        await asyncio.to_thread(apply_migrations, self.database_url)
        _say("migrations applied")
        self.api_key = await create_api_key(self.database_url, name="dev", tenant_id="dev")
        self.admin_key = await create_api_key(
            self.database_url, name="dev-admin", tenant_id="ops", admin=True
        )
        kafka_port = _port_or_free(9092)
        self.broker.start(kafka_port, log_path=WORKDIR / "tansu.log")
        _say(f"Tansu broker on {self.broker.bootstrap_servers}")
        await ensure_topics(
            self.broker.bootstrap_servers, self.settings.all_topics, partitions=self.settings.kafka_partitions
        )
        env = {
            **os.environ,
            "NOTIFY_DATABASE_URL": self.database_url,
            "NOTIFY_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "NOTIFY_API_PORT": str(self.api_port),
            "NOTIFY_SANDBOX_PORT": str(self.sandbox_port),
            "NOTIFY_WORKER_HTTP_PORT": str(self.worker_port),
            "NOTIFY_PROVIDER_URL": f"http://127.0.0.1:{self.sandbox_port}/send",
            "NOTIFY_KAFKA_SESSION_TIMEOUT_MS": os.environ.get("NOTIFY_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            # Webhook receivers under development run on this machine, over plain http.
            "NOTIFY_WEBHOOK_ALLOW_PRIVATE_URLS": os.environ.get("NOTIFY_WEBHOOK_ALLOW_PRIVATE_URLS", "true"),
        }
        for command in ("sandbox", "api", "worker"):
            # Each child gets its own process group so that Ctrl-C reaches only us; we stop them in order.
            self.processes.append(
                subprocess.Popen([sys.executable, "-m", "notify", command], env=env, start_new_session=True)
            )
        await _wait_ok(f"http://127.0.0.1:{self.sandbox_port}/health", self.processes)
        await _wait_ok(f"http://127.0.0.1:{self.api_port}/health/ready", self.processes)
        await _wait_ok(f"http://127.0.0.1:{self.worker_port}/health/ready", self.processes)

    def banner(self) -> str:
        api = f"http://127.0.0.1:{self.api_port}"
        return "\n".join(
            [
                "",
                "notify is up.",
                f"  console          {api}/console   (sign in with the admin key below)",
                f"  API              {api}   (health: {api}/health/ready, docs: {api}/docs)",
                f"  live status      ws://127.0.0.1:{self.api_port}/ws   (Authorization: Bearer <key>)",
                f"  metrics          {api}/metrics, http://127.0.0.1:{self.worker_port}/metrics (worker)",
                f"  sandbox provider http://127.0.0.1:{self.sandbox_port}   (received: /messages, /stats)",
                f"  Kafka (Tansu)    {self.broker.bootstrap_servers}",
                f"  PostgreSQL       {self.database_url}",
                "",
                f"  API key          {self.api_key}   (tenant 'dev'; a new one on each start)",
                f"  admin key        {self.admin_key}   (operator actions: the global delivery pause)",
                "",
                "Try:",
                f"  export NOTIFY_KEY={self.api_key}",
                f"  export NOTIFY_ADMIN_KEY={self.admin_key}",
                f'  curl -s -X POST {api}/api/v1/notifications -H "Authorization: Bearer $NOTIFY_KEY" \\',
                "       -H 'Content-Type: application/json' \\",
                '       -d \'{"channel": "sms", "recipient": "+14155550123", "content": "Hello"}\'',
                f'  curl -s {api}/api/v1/notifications -H "Authorization: Bearer $NOTIFY_KEY"',
                "",
                "Ctrl-C stops everything.",
                "",
            ]
        )

    def running(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> None:
        # API first (no new work), then the worker (drains in flight), then the sandbox and infrastructure.
        for process in self.processes[1:2] + self.processes[2:3] + self.processes[0:1]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.broker.stop()
        if self.embedded is not None:
            self.embedded.stop()


def run_dev_stack(settings: Settings, *, api_port: int, sandbox_port: int) -> int:
    stack = DevStack(settings, api_port, sandbox_port)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        asyncio.run(stack.start())
        print(stack.banner(), file=sys.stderr, flush=True)
        while not stopping:
            if not stack.running():
                _say("a notify process exited; stopping the stack")
                code = 1
                break
            time.sleep(0.2)
    except Exception as exc:
        _say(f"could not start: {exc}")
        code = 1
    finally:
        _say("stopping")
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code
