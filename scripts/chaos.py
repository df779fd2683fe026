#!/usr/bin/env python3
"""Chaos run: a mixed load against a whole notify stack while its processes are killed at random.

    scripts/chaos [--seconds 90] [--seed 7] [--rate 40]

Everything runs on 127.0.0.1 and belongs to this run: a PostgreSQL of its own (embedded, so it can be
killed), a Tansu broker, the sandbox provider, two APIs and two workers. Clients send single notifications
and batches (retrying with the same Idempotency-Key until they get an answer, as a careful client does) and
cancel some; meanwhile, at random, an API, a worker or the broker is SIGKILLed and restarted, and the
database is SIGKILLed and made unavailable for a few seconds. Then the faults stop, the stack gets time to
finish, and the run prints:

    accepted     notifications answered 2xx
    delivered    accepted and delivered (the rest: cancelled with a 200, expired, failed for good)
    lost         accepted and not in a terminal status at the end (must be 0)
    duplicates   notifications the provider received more than once, and whether each repeat carried the
                 same Idempotency-Key (the gateway can drop it)
    cancelled    cancelled with a 200 and still sent (must be 0)

It is bounded (--seconds of load, then at most --drain-seconds) and exits 1 when anything was lost or a
cancelled notification was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from _stack import Process, wait_ok  # scripts/ is on the path when run as scripts/chaos

from notify.adapters.postgres.migrate import apply_migrations, ensure_database
from notify.devtools.devstack import create_api_key
from notify.devtools.postgres import EmbeddedPostgres
from notify.devtools.processes import free_port
from notify.devtools.tansu import TansuBroker

TERMINAL = {"delivered", "failed", "cancelled", "expired"}


@dataclass
class Tally:
    accepted: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)  # cancelled with a 200
    refused: Counter[int] = field(default_factory=Counter)  # answers that were not 2xx, by status
    unanswered: int = 0  # connection errors (retried with the same key)
    faults: Counter[str] = field(default_factory=Counter)


class Chaos:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.pg = EmbeddedPostgres(workdir / "pg")
        self.broker = TansuBroker()
        self.processes: dict[str, Process] = {}
        self.api_urls: list[str] = []
        self.sandbox_url = ""
        self.key = ""
        self.database_url = ""

    # --- the stack ------------------------------------------------------------------------------------------

    async def up(self) -> None:
        await asyncio.to_thread(self.pg.start)
        self.database_url = self.pg.url("notify")
        await ensure_database(self.database_url)
        await asyncio.to_thread(apply_migrations, self.database_url)
        self.key = await create_api_key(self.database_url, name="chaos", tenant_id="chaos")
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
            NOTIFY_PROVIDER_TIMEOUT_S="2",
            NOTIFY_WORKER_LEASE_S="10",
            NOTIFY_STALE_PENDING_S="10",
            NOTIFY_RECOVERY_INTERVAL_S="0.5",
            NOTIFY_RETRY_BASE_S="0.5",
            NOTIFY_RETRY_CAP_S="4",
            NOTIFY_MAX_RETRIES_NORMAL="8",
            NOTIFY_API_KEY_RATE_LIMIT_PER_S="100000",
            NOTIFY_LOG_LEVEL="WARNING",
        )
        sandbox = Process(
            "sandbox",
            ["sandbox", "--port", str(sandbox_port), "--latency-ms", "20", "--error-rate", "0.02"],
            base,
            self.workdir / "sandbox.log",
        )
        sandbox.start()
        self.processes["sandbox"] = sandbox
        await wait_ok(f"{self.sandbox_url}/health")
        for i in (1, 2):
            port = free_port()
            api = Process(
                f"api-{i}", ["api"], {**base, "NOTIFY_API_PORT": str(port)}, self.workdir / f"api-{i}.log"
            )
            api.start()
            self.processes[api.name] = api
            self.api_urls.append(f"http://127.0.0.1:{port}")
            worker = Process(
                f"worker-{i}",
                ["worker"],
                {**base, "NOTIFY_WORKER_HTTP_PORT": str(free_port()), "NOTIFY_WORKER_ID": f"worker-{i}"},
                self.workdir / f"worker-{i}.log",
            )
            worker.start()
            self.processes[worker.name] = worker
        for url in self.api_urls:
            await wait_ok(f"{url}/health/ready")

    def down(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.broker.stop()
        self.pg.destroy()

    # --- faults ---------------------------------------------------------------------------------------------

    async def faults(self, stop: asyncio.Event) -> None:
        kinds = ["api", "worker", "broker", "database"]
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(4, 9))
            if stop.is_set():
                return
            kind = self.rng.choice(kinds)
            self.tally.faults[kind] += 1
            if kind in ("api", "worker"):
                victim = self.processes[f"{kind}-{self.rng.choice((1, 2))}"]
                victim.kill()
                await asyncio.sleep(self.rng.uniform(0.2, 2))
                victim.start()
            elif kind == "broker":
                self.broker.restart(crash=True)
            else:  # the database SIGKILLed and unavailable for a few seconds, then back with its data
                await asyncio.to_thread(self.pg.restart, crash=True, down_s=self.rng.uniform(1, 4))

    # --- load -----------------------------------------------------------------------------------------------

    async def _send(self, http: aiohttp.ClientSession, path: str, body: Any, key: str) -> Any:
        """POST until an answer comes (same Idempotency-Key each time); the 2xx body, or None if refused."""
        for _ in range(200):
            url = self.rng.choice(self.api_urls)
            try:
                async with http.post(f"{url}{path}", json=body, headers={"Idempotency-Key": key}) as r:
                    if r.status < 300:
                        return await r.json()
                    self.tally.refused[r.status] += 1
                    if r.status < 500 and r.status != 429:
                        return None
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.tally.unanswered += 1
            await asyncio.sleep(0.5)
        return None

    async def client(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            roll = self.rng.random()
            if roll < 0.15:  # a batch
                items = [
                    {"channel": "email", "recipient": f"u{i}@example.com", "content": "batch"}
                    for i in range(10)
                ]
                batch = {"notifications": items}
                answer = await self._send(http, "/api/v1/notifications/batch", batch, str(uuid.uuid4()))
                if answer is not None:
                    self.tally.accepted.update(n["id"] for n in answer["notifications"])
            else:
                body = {"channel": "sms", "recipient": "+14155550123", "content": "chaos"}
                answer = await self._send(http, "/api/v1/notifications", body, str(uuid.uuid4()))
                if answer is not None:
                    self.tally.accepted.add(answer["id"])
                    if roll > 0.9:  # cancel some right away; a 200 means it must never be sent
                        await self._cancel(http, answer["id"])
            await asyncio.sleep(1 / self.args.rate * self.args.clients)

    async def _cancel(self, http: aiohttp.ClientSession, nid: str) -> None:
        url = self.rng.choice(self.api_urls)
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            async with http.patch(f"{url}/api/v1/notifications/{nid}/cancel") as r:
                if r.status == 200:
                    self.tally.cancelled.add(nid)

    # --- the outcome ----------------------------------------------------------------------------------------

    async def settled(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT id::text AS id, status FROM notifications")
        finally:
            await conn.close()
        return {r["id"]: r["status"] for r in rows}

    async def report(self) -> int:
        statuses: dict[str, str] = {}
        deadline = time.monotonic() + self.args.drain_seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                statuses = await self.settled()
                if all(statuses.get(n) in TERMINAL for n in self.tally.accepted):
                    break
            await asyncio.sleep(2)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.sandbox_url}/messages?limit=1000000") as r,
        ):
            messages = (await r.json())["messages"]
        received = Counter(m["body"]["id"] for m in messages)
        same_key = all(m["idempotency_key"] == m["body"]["id"] for m in messages)
        duplicates = {n: c for n, c in received.items() if c > 1}
        accepted = self.tally.accepted
        lost = sorted(n for n in accepted if statuses.get(n) not in TERMINAL)
        delivered = sum(1 for n in accepted if statuses.get(n) == "delivered")
        others = Counter(statuses.get(n, "missing") for n in accepted if statuses.get(n) != "delivered")
        cancelled_sent = sorted(n for n in self.tally.cancelled if n in received)
        lines = [
            f"seed {self.args.seed}, {self.args.seconds:g} s of load, faults: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(self.tally.faults.items())),
            f"accepted   {len(accepted)}",
            f"delivered  {delivered}   (the others: {dict(sorted(others.items())) or 'none'})",
            f"lost       {len(lost)}" + (f"   e.g. {lost[:3]}" if lost else ""),
            f"duplicates {len(duplicates)} notifications sent more than once; every repeat with the same "
            f"Idempotency-Key: {'yes' if same_key else 'NO'}",
            f"cancelled  {len(self.tally.cancelled)} with a 200, of which sent anyway: {len(cancelled_sent)}",
            f"refused    {dict(self.tally.refused)} (answers that were not 2xx; retried with the same key), "
            f"unanswered {self.tally.unanswered}",
        ]
        print("\n".join(lines))
        return 1 if lost or cancelled_sent or not same_key else 0


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="notify-chaos-"))
    chaos = Chaos(args, workdir)
    try:
        await chaos.up()
        stop = asyncio.Event()
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {chaos.key}"}, timeout=aiohttp.ClientTimeout(total=20)
        ) as http:
            tasks = [asyncio.create_task(chaos.client(http, stop)) for _ in range(args.clients)]
            faults = asyncio.create_task(chaos.faults(stop))
            await asyncio.sleep(args.seconds)
            stop.set()
            await faults
            await asyncio.gather(*tasks)
        return await chaos.report()
    finally:
        await asyncio.to_thread(chaos.down)
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=90, help="how long the load and faults last")
    parser.add_argument("--drain-seconds", type=float, default=180, help="at most this long to settle after")
    parser.add_argument("--rate", type=float, default=40, help="requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
