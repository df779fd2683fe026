#!/usr/bin/env python3
"""Benchmark notify beside the ceilings of the same machine, in one run, and print one table of ratios.

    scripts/bench [--seconds 10] [--e2e 20000] [--backlog 100000]

Everything is started here, on 127.0.0.1: a database of its own on the local PostgreSQL (an embedded one if
none answers), a Tansu broker, the sandbox provider, one API and one worker; and the load generators. The
machine is shared and noisy, so each notify figure stands beside its ceiling measured minutes apart:

- single POST: `wrk` (50 connections) against the API, and against a trivial aiohttp handler that reads the
  body and answers 201;
- batch ingest: batches of 1000 from 2 clients, and asyncpg COPY of the same rows (notification + outbox)
  into copies of the tables with their indexes, durable (logged) and, for reference, temporary (no WAL);
- end to end: 20k notifications already on Kafka delivered to the sandbox by the worker, and a raw loop that
  consumes the same number of records and POSTs each to the sandbox (64 in flight);
- accept -> delivered latency at a steady 200/s;
- a high-priority notification posted behind a backlog of low ones: accept -> delivered, and each process's
  RSS with that backlog.

Bounded: every phase has a time limit. Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).parent))
from _stack import Process, Stack

import notify
from notify.adapters.kafka.topics import ensure_topics
from notify.devtools.processes import free_port, wait_for_port

SMS = {"channel": "sms", "recipient": "+14155550123", "content": "Your code is 123456"}

TRIVIAL_HANDLER = """
import sys
from aiohttp import web

async def create(request):
    await request.read()
    return web.json_response({"id": "00000000-0000-0000-0000-000000000000", "status": "pending"}, status=201)

app = web.Application()
app.router.add_post("/", create)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def parse_time(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass
class Wrk:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, body: dict[str, Any], headers: dict[str, str], seconds: float, workdir: Path) -> Wrk:
    script = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    bad += sum(int(g) for g in errors.groups()) if errors else 0
    return Wrk(rate, latency("50"), latency("99"), bad)


ROLES = {"notify api": "api", "notify worker": "worker", "notify sandbox": "sandbox", "tansu": "broker"}


def role_of(process: psutil.Process) -> str:
    try:
        if process.name() == "postgres" or process.name().startswith("postgres:"):
            return "postgres"
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    for marker, role in ROLES.items():  # python -m notify api, .../tansu broker
        if marker in command:
            return role
    return "other"


class CpuSplit:
    """Where the machine's cores went while a figure was measured: CPU seconds per part of the stack (API,
    worker, PostgreSQL, broker, sandbox, load generator: this script and its children such as wrk) over the
    wall time. It shows what a figure shares the machine with, which a profile of one process cannot."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.started = time.monotonic()
        self.machine = psutil.cpu_times()
        self.load = self._load()
        self.per_pid = self._per_pid()

    def _load(self) -> float:
        own, children = self.me.cpu_times(), os.times()
        return own.user + own.system + children.children_user + children.children_system

    def _per_pid(self) -> dict[int, tuple[str, float]]:
        seen: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter():
            if process.pid == self.me.pid:
                continue
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                seen[process.pid] = (role_of(process), times.user + times.system)
        return seen

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        used: dict[str, float] = {}
        for pid, (role, cpu) in self._per_pid().items():
            used[role] = used.get(role, 0.0) + cpu - self.per_pid.get(pid, (role, 0.0))[1]
        used["load generator"] = self._load() - self.load
        machine = psutil.cpu_times()
        idle = (machine.idle + machine.iowait) - (self.machine.idle + self.machine.iowait)
        split = {role: seconds / wall for role, seconds in used.items() if seconds / wall >= 0.005}
        split["idle"] = idle / wall
        return split


INGEST_ALONE = ", worker stopped (ingest alone)"


@dataclass
class Results:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    cpu: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def add_cpu(self, what: str, split: dict[str, float]) -> None:
        self.cpu.append((what, split))
        print(f"  cores while measuring {what}: {describe(split)}")

    def add(self, what: str, notify: str, ceiling: str = "", share: float | None = None) -> None:
        self.rows.append((what, notify, ceiling, f"{share:.0%}" if share is not None else ""))
        print(f"  {what}: {notify}" + (f" | ceiling {ceiling} | {share:.0%}" if share is not None else ""))

    def table(self) -> str:
        out = ["| what | notify | ceiling, same run | share |", "|---|---|---|---|"]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        if self.cpu:
            out += ["", f"Cores in use while notify was measured ({psutil.cpu_count()} on this machine):", ""]
            out += [f"- {what}: {describe(split)}" for what, split in self.cpu]
        return "\n".join(out)


def describe(split: dict[str, float]) -> str:
    ordered = sorted(((k, v) for k, v in split.items() if k != "idle"), key=lambda kv: -kv[1])
    return ", ".join(f"{role} {cores:.2f}" for role, cores in ordered) + f"; idle {split['idle']:.2f}"


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        settings = dict(kv.split("=", 1) for kv in getattr(args, "set", []))
        self.stack = Stack(workdir, env_overrides={"NOTIFY_LOG_LEVEL": "WARNING", **settings})
        self.results = Results()
        self.phase = ""
        self.spies: list[subprocess.Popen[bytes]] = []

    @contextlib.contextmanager
    def profiled(self, phase: str) -> Iterator[None]:
        """With ``--profile DIR``: py-spy samples the API and the worker for the whole phase (also a worker
        the phase starts), into ``DIR/<phase>-<process>.txt`` (collapsed stacks, which flame graph tools
        read)."""
        self.phase = phase
        for process in list(self.stack.processes.values()):
            self.spy_on(process)
        try:
            yield
        finally:
            for spy in self.spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
            for spy in self.spies:
                spy.wait(30)
            self.spies.clear()

    def spy_on(self, process: Process) -> None:
        into: Path | None = self.args.profile
        if into is None or not process.name.startswith(("api", "worker")):
            return
        into.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        output = str(into / f"{self.phase}-{process.name}.txt")
        self.spies.append(
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(process.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "-o",
                    output,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    @property
    def api(self) -> str:
        return self.stack.api_urls[0]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.key}"}

    async def sandbox(self, path: str, method: str = "GET") -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.stack.sandbox_url}{path}") as r,
        ):
            return await r.json()

    async def wait(self, what: str, check: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not await check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done within {timeout_s:g} s")
            await asyncio.sleep(0.2)

    async def settle(self, timeout_s: float = 600) -> float:
        """Start each phase on an idle, warmed stack: wait until everything earlier phases accepted has been
        delivered (else a phase would measure the previous one's backlog), then send one notification through
        (the worker has joined its group). Returns the seconds it took."""
        started = time.monotonic()
        conn = await self.stack.db()
        try:

            async def idle() -> bool:
                busy: int = await conn.fetchval(
                    "SELECT count(*) FROM notifications WHERE status IN ('pending', 'processing', 'retrying')"
                )
                return busy == 0

            await self.wait("the backlog of earlier phases", idle, timeout_s)
            async with (
                aiohttp.ClientSession(headers=self.auth()) as http,
                http.post(f"{self.api}/api/v1/notifications", json=SMS) as r,
            ):
                probe = (await r.json())["id"]
            if not await self.delivered_after([probe], timeout_s):
                raise TimeoutError("a probe notification was not delivered")
        finally:
            await conn.close()
        return time.monotonic() - started

    # --- single POST ------------------------------------------------------------------------------------

    async def single_post(self) -> None:
        port = free_port()
        trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL_HANDLER, str(port)])
        try:
            await asyncio.to_thread(wait_for_port, "127.0.0.1", port)
            ceiling = await asyncio.to_thread(
                run_wrk,
                f"http://127.0.0.1:{port}/",
                SMS,
                {"Content-Type": "application/json"},
                self.args.seconds,
                self.workdir,
            )
        finally:
            trivial.terminate()
            trivial.wait(10)
        headers = {"Content-Type": "application/json", **self.auth()}
        for alone in (False, True):
            async with self.worker_stopped(alone):
                cpu = CpuSplit()
                notify = await asyncio.to_thread(
                    run_wrk, f"{self.api}/api/v1/notifications", SMS, headers, self.args.seconds, self.workdir
                )
                self.results.add_cpu("single POST" + INGEST_ALONE * alone, cpu.cores())
            self.results.add(
                "single POST, 50 connections (wrk)" + INGEST_ALONE * alone,
                f"{notify.rate:,.0f}/s, p50 {notify.p50_ms:.0f} ms, p99 {notify.p99_ms:.0f} ms"
                + (f", {notify.errors} errors" if notify.errors else ""),
                f"trivial aiohttp handler {ceiling.rate:,.0f}/s, p99 {ceiling.p99_ms:.0f} ms",
                notify.rate / ceiling.rate,
            )

    @contextlib.asynccontextmanager
    async def worker_stopped(self, stopped: bool = True) -> AsyncIterator[None]:
        """With ``stopped``, the ingest figures are measured with the worker stopped, so the API has the
        cores the worker would spend delivering what it accepts (the ceilings run alone too); the worker is
        started again after, and the next phase waits for it to deliver the backlog."""
        if not stopped:
            yield
            return
        self.stack.processes["worker-1"].stop()
        try:
            yield
        finally:
            self.stack.add_worker(1)

    # --- batch ingest -----------------------------------------------------------------------------------

    async def post_batches(self, total: int, priority: str = "normal", clients: int = 2) -> float:
        """Accept ``total`` notifications in batches of 1000; notifications/s."""
        batches = total // 1000
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(batches):
            queue.put_nowait(i)
        body = {"notifications": [{**SMS, "priority": priority}] * 1000}

        async def client() -> None:
            async with aiohttp.ClientSession(headers=self.auth()) as http:
                while not queue.empty():
                    queue.get_nowait()
                    async with http.post(f"{self.api}/api/v1/notifications/batch", json=body) as r:
                        if r.status != 201:
                            raise RuntimeError(f"batch refused: {r.status} {await r.text()}")

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return batches * 1000 / (time.monotonic() - started)

    async def copy_ceiling(self, total: int, durable: bool) -> float:
        """COPY of the rows notify writes into copies of its tables (same columns, indexes, defaults): durable
        (a logged table, written to the WAL and fsynced at commit as notify's rows are) or a temporary table
        (no WAL; faster than any durable write can be)."""
        conn = await self.stack.db()
        kind = "" if durable else "TEMP"
        try:
            await conn.execute(
                "DROP TABLE IF EXISTS n_copy, o_copy;"
                f"CREATE {kind} TABLE n_copy (LIKE notifications INCLUDING ALL);"
                f"CREATE {kind} TABLE o_copy (LIKE outbox INCLUDING ALL)"
            )
            now = datetime.now(UTC)
            started = time.monotonic()
            for _ in range(total // 1000):
                ids = [uuid.uuid4() for _ in range(1000)]
                rows = [
                    (
                        i,
                        "run",
                        "sms",
                        SMS["recipient"],
                        SMS["content"],
                        "normal",
                        "pending",
                        now,
                        now,
                        3,
                        "{}",
                        uuid.uuid4().hex,
                        "h" * 64,
                        now,
                    )
                    for i in ids
                ]
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "n_copy",
                        records=rows,
                        columns=[
                            "id",
                            "tenant_id",
                            "channel",
                            "recipient",
                            "content",
                            "priority",
                            "status",
                            "created_at",
                            "updated_at",
                            "max_retries",
                            "metadata",
                            "correlation_id",
                            "request_hash",
                            "enqueued_at",
                        ],
                    )
                    await conn.copy_records_to_table(
                        "o_copy",
                        records=[(i, "normal", "sms", now) for i in ids],
                        columns=["notification_id", "priority", "channel", "created_at"],
                    )
            return (total // 1000) * 1000 / (time.monotonic() - started)
        finally:
            await conn.execute("DROP TABLE IF EXISTS n_copy, o_copy")
            await conn.close()

    async def batch_ingest(self) -> None:
        total = self.args.batch_total
        ceiling = await self.copy_ceiling(total, durable=True)
        unlogged = await self.copy_ceiling(total, durable=False)
        for alone in (False, True):
            async with self.worker_stopped(alone):
                cpu = CpuSplit()
                notify = await self.post_batches(total)
                self.results.add_cpu("batch ingest" + INGEST_ALONE * alone, cpu.cores())
            self.results.add(
                "batch ingest, 1000 per request, 2 clients" + INGEST_ALONE * alone,
                f"{notify:,.0f} notifications/s",
                f"asyncpg COPY of the rows + outbox rows {ceiling:,.0f}/s "
                f"(into temporary tables, no WAL: {unlogged:,.0f}/s, {notify / unlogged:.0%})",
                notify / ceiling,
            )

    # --- end to end -------------------------------------------------------------------------------------

    async def raw_consume_post(self, total: int) -> float:
        topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
        bootstrap = self.stack.broker.bootstrap_servers
        await ensure_topics(bootstrap, [topic], partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    json.dumps({"notification_id": str(uuid.uuid4())}).encode(),
                    key=str(uuid.uuid4()).encode(),
                )
                for _ in range(total)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=20
        )
        await consumer.start()
        sent = 0
        gate = asyncio.Semaphore(64)
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(3)])
            async with aiohttp.ClientSession() as http:

                async def post(value: bytes) -> None:
                    nonlocal sent
                    record = json.loads(value)
                    body = {
                        "id": record["notification_id"],
                        "to": SMS["recipient"],
                        "channel": "sms",
                        "subject": None,
                        "content": SMS["content"],
                        "metadata": {},
                    }
                    async with http.post(
                        f"{self.stack.sandbox_url}/send",
                        json=body,
                        headers={"Idempotency-Key": record["notification_id"]},
                    ) as r:
                        await r.read()
                    sent += 1
                    gate.release()

                started = time.monotonic()
                tasks = []
                while (
                    sent + len([t for t in tasks if not t.done()]) < total
                    and time.monotonic() - started < 120
                ):
                    batches = await consumer.getmany(timeout_ms=100, max_records=500)
                    for records in batches.values():
                        for record in records:
                            await gate.acquire()
                            tasks.append(asyncio.create_task(post(record.value)))
                    if len(tasks) >= total:
                        break
                await asyncio.gather(*tasks)
                return sent / (time.monotonic() - started)
        finally:
            await consumer.stop()

    async def end_to_end(self) -> None:
        total = self.args.e2e
        await self.sandbox("/reset", "POST")
        ceiling = await self.raw_consume_post(total)
        worker = self.stack.processes["worker-1"]
        worker.stop()
        await self.post_batches(total)
        await self.wait("the outbox published", lambda: self._published(), 300)
        await self.sandbox("/reset", "POST")
        workers = self.args.e2e_workers
        for i in range(1, workers + 1):  # one consumer group: the partitions are shared out among them
            self.spy_on(self.stack.add_worker(i))

        async def started() -> bool:
            return (await self.sandbox("/stats"))["accepted"] > 0  # type: ignore[no-any-return]

        async def all_there() -> bool:
            return (await self.sandbox("/stats"))["accepted"] >= total  # type: ignore[no-any-return]

        await self.wait("the first delivery", started, 120)  # the group joined: the cores are measured
        cpu = CpuSplit()  # from here, while notify delivers
        await self.wait("end to end delivery", all_there, 600)
        self.results.add_cpu("end to end", cpu.cores())
        messages = (await self.sandbox(f"/messages?limit={total + 10}"))["messages"]
        times = sorted(parse_time(m["received_at"]) for m in messages)
        rate = (len(times) - 1) / (times[-1] - times[0]).total_seconds()
        for i in range(2, workers + 1):  # the later phases measure one worker
            self.stack.processes.pop(f"worker-{i}").stop()
        self.results.add(
            f"end to end, {total:,} accepted -> all at the sandbox"
            + (f", {workers} workers" if workers > 1 else ""),
            f"{rate:,.0f}/s",
            f"aiokafka consume + POST to the sandbox, 64 in flight {ceiling:,.0f}/s",
            rate / ceiling,
        )

    async def _published(self) -> bool:
        return await self.stack.unpublished() == 0

    # --- latency at a steady rate ----------------------------------------------------------------------

    async def steady_latency(self, rate: float = 200.0) -> None:
        await self.sandbox("/reset", "POST")
        accepted: dict[str, datetime] = {}
        async with aiohttp.ClientSession(headers=self.auth()) as http:

            async def one() -> None:
                async with http.post(f"{self.api}/api/v1/notifications", json=SMS) as r:
                    if r.status == 201:
                        body = await r.json()
                        accepted[body["id"]] = parse_time(body["created_at"])

            tasks = []
            started = time.monotonic()
            n = int(rate * self.args.seconds)
            for i in range(n):
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)

        latency = await self.delivered_after(list(accepted), 120)
        self.results.add(
            f"accept -> delivered, steady {rate:.0f}/s for {self.args.seconds:g} s",
            f"p50 {pct(latency, 50):.0f} ms, p99 {pct(latency, 99):.0f} ms ({len(accepted)} sent)",
        )

    async def delivered_after(self, ids: list[str], timeout_s: float) -> list[float]:
        """For each of ``ids`` delivered within ``timeout_s``: ms from accepted (created_at) to delivered
        (sent_at, when the provider's acceptance was stored)."""
        deadline = time.monotonic() + timeout_s
        conn = await self.stack.db()
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT extract(epoch FROM sent_at - created_at) * 1000 AS ms FROM notifications "
                    "WHERE id = ANY($1::uuid[]) AND status = 'delivered'",
                    [uuid.UUID(i) for i in ids],
                )
                if len(rows) == len(ids) or time.monotonic() > deadline:
                    return [float(r["ms"]) for r in rows]
                await asyncio.sleep(0.5)
        finally:
            await conn.close()

    # --- priority behind a backlog, and memory ----------------------------------------------------------

    async def priority_behind_backlog(self) -> None:
        worker = self.stack.processes["worker-1"]
        worker.stop()
        started = time.monotonic()
        backlog = 0
        while backlog < self.args.backlog and time.monotonic() - started < self.args.backlog_seconds:
            await self.post_batches(min(10_000, self.args.backlog - backlog), priority="low")
            backlog += min(10_000, self.args.backlog - backlog)
        await self.wait("the backlog published", lambda: self._published(), 600)
        await self.sandbox("/reset", "POST")
        worker = self.stack.add_worker(1)
        rss: dict[str, float] = {}
        latency: list[float] = []
        async with aiohttp.ClientSession(headers=self.auth()) as http:
            await asyncio.sleep(5)  # the worker joins its group and starts on the backlog
            sent: dict[str, datetime] = {}
            for _ in range(int(self.args.seconds * 10)):
                async with http.post(
                    f"{self.api}/api/v1/notifications", json={**SMS, "priority": "high"}
                ) as r:
                    body = await r.json()
                    sent[body["id"]] = parse_time(body["created_at"])
                for name in ("api-1", "worker-1"):
                    rss[name] = max(rss.get(name, 0.0), self.stack.processes[name].rss_mib())
                await asyncio.sleep(0.1)
        latency = await self.delivered_after(list(sent), 60)
        lows = (await self.sandbox("/stats"))["accepted"] - len(latency)
        self.results.add(
            f"high priority posted behind {backlog:,} low",
            f"p50 {pct(latency, 50):.0f} ms, p99 {pct(latency, 99):.0f} ms "
            f"({len(latency)}/{len(sent)} delivered; {lows:,} low delivered meanwhile)",
        )
        self.results.add(
            f"RSS with a {backlog:,} backlog", ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(rss.items()))
        )


async def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("scripts/bench needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    bench = Bench(args, workdir)
    try:
        await bench.stack.up(apis=1, workers=1)
        commit = subprocess.run(
            ["git", "-C", str(Path(notify.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )  # of the notify being measured (PYTHONPATH=<another checkout>/src measures that one)
        print(f"notify {commit.stdout.strip()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", *args.set)
        phases = {
            "single": bench.single_post,
            "batch": bench.batch_ingest,
            "e2e": bench.end_to_end,
            "latency": bench.steady_latency,
            "priority": bench.priority_behind_backlog,
        }
        for name in args.only or list(phases):
            print(f"- {name} (idle after {await bench.settle():.0f} s)")
            with bench.profiled(name):
                await phases[name]()
        print()
        print(bench.results.table())
        return 0
    finally:
        await asyncio.to_thread(bench.stack.down)
        await bench.stack.drop_database()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each timed load")
    parser.add_argument(
        "--batch-total", type=int, default=20_000, help="notifications per batch-ingest figure"
    )
    parser.add_argument("--e2e", type=int, default=20_000, help="notifications in the end-to-end figure")
    parser.add_argument(
        "--e2e-workers", type=int, default=1, help="worker processes in the end-to-end figure (one group)"
    )
    parser.add_argument("--backlog", type=int, default=100_000, help="low notifications waiting")
    parser.add_argument("--backlog-seconds", type=float, default=180, help="at most this long to build it")
    parser.add_argument("--only", nargs="*", choices=["single", "batch", "e2e", "latency", "priority"])
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the API and the worker with py-spy during each phase, into DIR",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NOTIFY_X=VALUE",
        help="a setting for notify's processes (repeatable), e.g. --set NOTIFY_WORKER_CONCURRENCY=64",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
