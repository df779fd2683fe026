"""The dev/test infrastructure helpers, against the real Tansu broker and the real embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from notify.devtools import postgres as embedded
from notify.devtools.postgres import PG_SYSTEM_USER, EmbeddedPostgres, ensure_postgres, postgres_answers
from notify.devtools.processes import free_port, wait_for_port
from notify.devtools.tansu import TansuBroker, find_tansu

# The PostgreSQL most developer machines (and this CI host) already run; never started or stopped here.
SYSTEM_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _family(pid: int) -> list[psutil.Process]:
    """The process and all its descendants, so a test can check that none of them outlives stop()."""
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def _alive(process: psutil.Process) -> bool:
    # is_running() compares creation times, so a recycled PID does not count as still running; a process
    # can also exit between the two calls, hence NoSuchProcess.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _users(processes: list[psutil.Process]) -> set[str]:
    users = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # e.g. the backend of a connection just closed
            users.add(process.username())
    return users


def _assert_gone(processes: list[psutil.Process]) -> None:
    # stop() waited for the main process; its children (PostgreSQL's backends) may take a moment more.
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not [p for p in alive if _alive(p)], f"still running after stop(): {alive}"


async def _topics(bootstrap_servers: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


# ----------------------------------------------------------------------------------------------- ports


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_times_out_with_a_clear_message() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port} within 0\.3s"):
        wait_for_port("127.0.0.1", port, timeout_s=0.3)


# ----------------------------------------------------------------------------------------------- Tansu


def test_find_tansu_returns_an_executable() -> None:
    binary = find_tansu()
    assert binary.name == "tansu"
    assert os.access(binary, os.X_OK)


@pytest.mark.e2e  # starts the server
async def test_tansu_serves_kafka_clients_and_stops(tmp_path: Path) -> None:
    log_path = tmp_path / "tansu.log"
    broker = TansuBroker()
    broker.start(log_path=log_path)
    try:
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        assert broker.pid is not None

        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("infra-check", num_partitions=2, replication_factor=1)])
            assert "infra-check" in await admin.list_topics()
        finally:
            await admin.close()
        processes = _family(broker.pid)
    finally:
        broker.stop()

    _assert_gone(processes)
    assert broker.pid is None
    assert not broker.running
    assert "listening on" in log_path.read_text()
    broker.stop()  # idempotent


@pytest.mark.e2e  # starts the server
async def test_tansu_restart_keeps_the_port_and_loses_all_data(tmp_path: Path) -> None:
    with TansuBroker() as broker:
        port, first_pid = broker.port, broker.pid
        assert first_pid is not None
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("before-restart", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

        first_broker = psutil.Process(first_pid)
        broker.restart()

        assert broker.port == port
        assert broker.pid not in (None, first_pid)
        assert not _alive(first_broker)
        assert "before-restart" not in await _topics(broker.bootstrap_servers)
    assert not broker.running


def test_tansu_refuses_a_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(OSError, match="already in use"):
            TansuBroker().start(port)


# ------------------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.e2e  # starts the server
async def test_embedded_postgres_answers_queries_and_stops(tmp_path: Path) -> None:
    port = free_port()
    assert port != 5432
    server = EmbeddedPostgres(tmp_path / "pg", port=port)
    server.start()
    try:
        assert server.url() == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        assert server.pid is not None

        conn = await asyncpg.connect(server.url())
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SHOW server_version_num") >= "180000"
            assert await conn.fetchval("SELECT current_user") == "postgres"
        finally:
            await conn.close()
        assert await postgres_answers(server.url())

        processes = _family(server.pid)
        assert len(processes) > 1  # the postmaster and its background workers
        if os.geteuid() == 0:
            # PostgreSQL refuses root: it runs as the system user, without root's supplementary groups.
            assert _users(processes) == {PG_SYSTEM_USER}
            assert processes[0].gids().real != 0
    finally:
        server.stop()

    _assert_gone(processes)
    assert server.pid is None
    assert not await postgres_answers(server.url(), timeout_s=1.0)
    server.stop()  # idempotent
    server.destroy()


@pytest.mark.e2e  # starts the server
async def test_embedded_postgres_reuses_its_data_directory_until_destroyed(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        conn = await asyncpg.connect(server.url())
        try:
            await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()
        data_dir = server.data_dir

    server = EmbeddedPostgres(tmp_path / "pg")
    with server:
        assert server.data_dir == data_dir
        conn = await asyncpg.connect(server.url())
        try:
            assert await conn.fetchval("SELECT n FROM kept") == 42
        finally:
            await conn.close()

    server.destroy()
    assert not data_dir.exists()
    assert not (tmp_path / "pg" / "pgdata").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="relocation only happens when the server runs as another user")
@pytest.mark.e2e  # starts the server
async def test_embedded_postgres_relocates_data_the_server_user_cannot_reach(tmp_path: Path) -> None:
    workdir = tmp_path / "private" / "pg"
    workdir.mkdir(parents=True)
    (tmp_path / "private").chmod(0o700)  # as /root or pytest's own temp root are

    server = EmbeddedPostgres(workdir)
    with server:
        link = workdir / "pgdata"
        assert link.is_symlink()
        assert link.resolve() == server.data_dir
        assert server.data_dir.parent.parent == embedded._relocation_root()
        assert server.data_dir.owner() == PG_SYSTEM_USER
        assert await postgres_answers(server.url())
        slot = server.data_dir.parent
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700  # left as it was
    server.destroy()
    assert not slot.exists()
    assert not link.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="relocation only happens when the server runs as another user")
def test_relocated_data_without_a_workdir_is_collected(tmp_path: Path) -> None:
    root = embedded._relocation_root()
    orphan, fresh, owned = (
        root / f"cluster-test-{name}-{os.getpid()}" for name in ("orphan", "fresh", "owned")
    )
    for slot in (orphan, fresh, owned):
        (slot / "pgdata").mkdir(parents=True)
        (slot / "owner").write_text(str(tmp_path / f"{slot.name}-link"))
    (tmp_path / f"{owned.name}-link").symlink_to(owned / "pgdata")
    long_ago = time.time() - 3600
    for slot in (orphan, owned):
        os.utime(slot, (long_ago, long_ago))
    try:
        embedded._collect_orphans(root)

        assert not orphan.exists()
        assert fresh.exists()  # may still be being set up by another process
        assert owned.exists()  # its workdir still points at it
    finally:
        for slot in (orphan, fresh, owned):
            shutil.rmtree(slot, ignore_errors=True)


async def test_postgres_answers_is_false_when_nothing_listens() -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert not await postgres_answers(nowhere, timeout_s=1.0)


async def test_ensure_postgres_keeps_a_server_that_answers(tmp_path: Path) -> None:
    if not await postgres_answers(SYSTEM_POSTGRES_URL):
        pytest.skip(f"no PostgreSQL answers at {SYSTEM_POSTGRES_URL}")
    workdir = tmp_path / "embedded"

    url, server = await ensure_postgres(SYSTEM_POSTGRES_URL, workdir)

    assert (url, server) == (SYSTEM_POSTGRES_URL, None)
    # A missing database still counts as a server that answers: creating it is the caller's job.
    missing_db = SYSTEM_POSTGRES_URL.rsplit("/", 1)[0] + "/notify_infra_no_such_db"
    assert await ensure_postgres(missing_db, workdir) == (missing_db, None)
    assert not workdir.exists()  # nothing was started


@pytest.mark.e2e  # starts the server
async def test_ensure_postgres_starts_an_embedded_server_when_nothing_answers(tmp_path: Path) -> None:
    dead_port = free_port()
    preferred = f"postgresql://someone:secret@127.0.0.1:{dead_port}/notify_test?sslmode=disable"

    url, server = await ensure_postgres(preferred, tmp_path)
    assert server is not None
    try:
        assert url == f"postgresql://postgres@127.0.0.1:{server.port}/notify_test"
        assert server.port != dead_port
        # The database name is kept but creating it is the caller's job.
        conn = await asyncpg.connect(server.url("postgres"))
        try:
            await conn.execute("CREATE DATABASE notify_test")
        finally:
            await conn.close()
        assert await postgres_answers(url)
    finally:
        server.destroy()
    assert not server.running
