"""Real infrastructure for the integration and end-to-end tests.

- PostgreSQL: the server at NOTIFY_TEST_POSTGRES_URL, else 127.0.0.1:5432 if it answers, else an embedded one
  started for this session. One migrated template database per session; every test gets a fresh copy
  (``CREATE DATABASE ... TEMPLATE``), so tests never see each other's rows.
- Kafka protocol: one Tansu broker per session on a free port, stopped by PID at the end. Tests isolate
  themselves with their own topic prefix and consumer group.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from notify.adapters.postgres.migrate import apply_migrations
from notify.adapters.postgres.pool import create_pool
from notify.devtools.devstack import create_api_key
from notify.devtools.postgres import ensure_postgres
from notify.devtools.processes import free_port
from notify.devtools.tansu import TansuBroker
from tests.support import NotifyProcess, wait_http_ok, wait_log

pytest_plugins = ["tests.process_guard", "tests.smtp_server", "tests.standins.twilio", "pytester"]


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
async def postgres_server(infra_dir: Path) -> AsyncIterator[str]:
    """URL of the ``postgres`` database on a server we may create databases on."""
    preferred = os.environ.get("NOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url, embedded = await ensure_postgres(preferred, infra_dir / "pg")
    try:
        yield url
    finally:
        if embedded is not None:
            embedded.destroy()


@pytest.fixture(scope="session")
async def template_database(postgres_server: str) -> AsyncIterator[str]:
    name = f"notify_tmpl_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = _with_db(postgres_server, name)
        await asyncio.to_thread(apply_migrations, url)
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database_url(postgres_server: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"notify_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield _with_db(postgres_server, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, min_size=1, max_size=8)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(scope="session")
def broker(infra_dir: Path) -> Iterator[TansuBroker]:
    b = TansuBroker()
    b.start(log_path=infra_dir / "tansu.log")
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}.notifications"


class Stack:
    """The real notify processes for one test: sandbox, API(s), worker(s), on a private database, topic
    prefix and consumer group."""

    def __init__(self, database_url: str, bootstrap: str, prefix: str, log_dir: Path, api_key: str) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.log_dir = log_dir
        self.sandbox_port = free_port()
        self.processes: list[NotifyProcess] = []
        self.apis: dict[str, str] = {}
        self.workers: dict[str, str] = {}  # name -> the worker's own HTTP port (health, metrics)
        self.api_key = api_key
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"})

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def api_url(self) -> str:
        return next(iter(self.apis.values()))

    def env(self, **overrides: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
        env.update(
            NOTIFY_DATABASE_URL=self.database_url,
            NOTIFY_KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            NOTIFY_KAFKA_TOPIC_PREFIX=self.prefix,
            NOTIFY_KAFKA_CONSUMER_GROUP=f"{self.prefix}.workers",
            NOTIFY_KAFKA_PARTITIONS="3",
            # Tansu completes a first join only after half the session timeout: every worker start and
            # rebalance waits that long. 4 s (heartbeats each second) keeps it to 2 s.
            NOTIFY_KAFKA_SESSION_TIMEOUT_MS="4000",
            NOTIFY_KAFKA_HEARTBEAT_INTERVAL_MS="1000",
            NOTIFY_PROVIDER_URL=f"{self.sandbox_url}/send",
            NOTIFY_PROVIDER_TIMEOUT_S="5",
            NOTIFY_OUTBOX_POLL_INTERVAL_S="0.2",
            NOTIFY_LOG_LEVEL="INFO",
            NOTIFY_API_KEY_RATE_LIMIT_PER_S="100000",  # tests that exercise the limit set their own
            NOTIFY_API_FAILED_AUTH_PER_S="0",  # likewise: many tests send bad keys from one address
            NOTIFY_WEBHOOK_ALLOW_PRIVATE_URLS="true",  # the receivers are on loopback
        )
        env.update({f"NOTIFY_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> NotifyProcess:
        process = NotifyProcess(name, args, env, self.log_dir).start()
        self.processes.append(process)
        return process

    async def start_sandbox(self, *flags: str) -> NotifyProcess:
        process = self._spawn("sandbox", ["sandbox", "--port", str(self.sandbox_port), *flags], self.env())
        await wait_http_ok(f"{self.sandbox_url}/health", process=process)
        return process

    async def start_api(self, name: str = "api", **overrides: Any) -> NotifyProcess:
        port = free_port()
        process = self._spawn(name, ["api"], self.env(api_port=port, **overrides))
        url = f"http://127.0.0.1:{port}"
        await wait_http_ok(f"{url}/health/ready", process=process)
        self.apis[name] = url
        return process

    async def start_worker(
        self, name: str = "worker", *, wait: bool = True, **overrides: Any
    ) -> NotifyProcess:
        """``wait``: return once the worker got its partitions (else at once: it is still joining)."""
        overrides.setdefault("worker_http_port", free_port())
        overrides.setdefault("worker_id", name)  # its claims' lease_owner is "<name>#<n>"
        process = self._spawn(name, ["worker"], self.env(**overrides))
        if wait:
            await wait_log(process, "partitions assigned")
        self.workers[name] = f"http://127.0.0.1:{overrides['worker_http_port']}"
        return process

    # --- API calls ---------------------------------------------------------------------------------------

    async def post(self, body: Any, *, api: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        base = self.apis[api] if api else self.api_url
        async with self.http.post(f"{base}/api/v1/notifications", json=body, **kwargs) as r:
            return r.status, await r.json()

    async def send_sms(self, content: str = "hello", **fields: Any) -> dict[str, Any]:
        status, body = await self.post(
            {"channel": "sms", "recipient": "+14155550123", "content": content, **fields}
        )
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def get(self, notification_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.api_url}/api/v1/notifications/{notification_id}") as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def cancel(self, notification_id: str) -> tuple[int, Any]:
        async with self.http.patch(f"{self.api_url}/api/v1/notifications/{notification_id}/cancel") as r:
            return r.status, await r.json()

    async def sandbox(self, path: str) -> Any:
        async with self.http.get(f"{self.sandbox_url}{path}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def set_sandbox(self, **knobs: Any) -> None:
        async with self.http.put(f"{self.sandbox_url}/control", json=knobs) as r:
            assert r.status == 200, await r.text()

    async def statuses(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM notifications GROUP BY status")
        finally:
            await conn.close()
        return {r["status"]: r["n"] for r in rows}

    async def close(self) -> None:
        for process in reversed(self.processes):
            if process.alive():
                process.terminate(timeout_s=20)
        await self.http.close()
        for process in self.processes:  # shown by pytest when the test failed
            print(f"----- {process.name} log (tail) -----\n{process.log_text()[-3000:]}")


@pytest.fixture
async def stack(
    database_url: str, broker: TansuBroker, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    key = await create_api_key(database_url, name="tests", tenant_id="tenant-a")
    s = Stack(database_url, broker.bootstrap_servers, topic_prefix, tmp_path, key)
    try:
        yield s
    finally:
        await s.close()
