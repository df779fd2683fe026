"""A whole notify stack on 127.0.0.1 for the scripts (chaos, bench): processes of their own, started and
stopped here, with a PostgreSQL database and a Tansu broker that belong to the run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from notify.adapters.postgres.migrate import apply_migrations, ensure_database
from notify.devtools.devstack import create_api_key
from notify.devtools.postgres import EmbeddedPostgres, ensure_postgres
from notify.devtools.processes import free_port
from notify.devtools.tansu import TansuBroker


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notify", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_mib(self) -> float:
        """Resident memory now."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0


async def wait_ok(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s")


@dataclass
class Stack:
    """``embedded``: a PostgreSQL server of the run's own (it can be killed); else the one at
    ``postgres_url`` (a new database on it, dropped at the end), an embedded one if none answers."""

    workdir: Path
    embedded: bool = False
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    env_overrides: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    api_urls: list[str] = field(default_factory=list)
    sandbox_url: str = ""
    key: str = ""
    database_url: str = ""
    pg: EmbeddedPostgres | None = None
    broker: TansuBroker = field(default_factory=TansuBroker)
    base_env: dict[str, str] = field(default_factory=dict)
    _dropped_database: tuple[str, str] | None = None

    async def up(self, *, apis: int = 1, workers: int = 1, sandbox_args: tuple[str, ...] = ()) -> None:
        if self.embedded:
            self.pg = EmbeddedPostgres(self.workdir / "pg")
            await asyncio.to_thread(self.pg.start)
            self.database_url = self.pg.url("notify")
        else:
            server, self.pg = await ensure_postgres(self.postgres_url, self.workdir / "pg")
            name = f"notify_run_{uuid.uuid4().hex[:10]}"
            self.database_url = server.rsplit("/", 1)[0] + f"/{name}"
            self._dropped_database = (server, name)
        await ensure_database(self.database_url)
        await asyncio.to_thread(apply_migrations, self.database_url)
        self.key = await create_api_key(self.database_url, name="run", tenant_id="run")
        self.broker.start(log_path=self.workdir / "tansu.log")
        sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
        base.update(
            NOTIFY_DATABASE_URL=self.database_url,
            NOTIFY_KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap_servers,
            NOTIFY_KAFKA_PARTITIONS="3",
            NOTIFY_KAFKA_SESSION_TIMEOUT_MS="6000",
            NOTIFY_KAFKA_HEARTBEAT_INTERVAL_MS="1000",
            NOTIFY_PROVIDER_URL=f"{self.sandbox_url}/send",
            NOTIFY_API_KEY_RATE_LIMIT_PER_S="1000000",
            NOTIFY_LOG_LEVEL="WARNING",
        )
        base.update(self.env_overrides)
        self.base_env = base
        sandbox = Process(
            "sandbox",
            ["sandbox", "--port", str(sandbox_port), *sandbox_args],
            base,
            self.workdir / "sandbox.log",
        )
        sandbox.start()
        self.processes["sandbox"] = sandbox
        await wait_ok(f"{self.sandbox_url}/health")
        for i in range(1, apis + 1):
            port = free_port()
            api = Process(
                f"api-{i}", ["api"], {**base, "NOTIFY_API_PORT": str(port)}, self.workdir / f"api-{i}.log"
            )
            api.start()
            self.processes[api.name] = api
            self.api_urls.append(f"http://127.0.0.1:{port}")
        for i in range(1, workers + 1):
            self.add_worker(i)
        for url in self.api_urls:
            await wait_ok(f"{url}/health/ready")

    def add_worker(self, i: int) -> Process:
        worker = Process(
            f"worker-{i}",
            ["worker"],
            {**self.base_env, "NOTIFY_WORKER_HTTP_PORT": str(free_port()), "NOTIFY_WORKER_ID": f"worker-{i}"},
            self.workdir / f"worker-{i}.log",
        )
        worker.start()
        self.processes[worker.name] = worker
        return worker

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)

    async def unpublished(self) -> int:
        conn = await self.db()
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            return count
        finally:
            await conn.close()

    def down(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.broker.stop()
        if self.embedded and self.pg is not None:
            self.pg.destroy()
        elif self.pg is not None:
            self.pg.stop()

    async def drop_database(self) -> None:
        if self._dropped_database is None:
            return
        server, name = self._dropped_database
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(server)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
