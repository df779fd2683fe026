"""The compose stack's database roles, on a real server: deploy/postgres/init-roles.sh as the postgres image
runs it, migrations as notify_owner, and notify's own use of the database as notify_app (rows only)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from notify.adapters.clock import SystemClock
from notify.adapters.postgres.migrate import apply_migrations
from notify.adapters.postgres.pool import create_pool
from notify.adapters.postgres.store import PgNotificationStore
from notify.app.notifications import NewNotification, NotificationService
from notify.devtools.postgres import EmbeddedPostgres
from notify.domain.model import Channel
from tests.support import REPO


@pytest.mark.skipif(shutil.which("psql") is None, reason="the psql client runs the init script")
async def test_the_app_role_reads_and_writes_rows_and_nothing_else(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    await asyncio.to_thread(server.start)
    try:
        env = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "POSTGRES_USER": "postgres",
            "DB_OWNER_PASSWORD": "owner-secret",
            "DB_APP_PASSWORD": "app-secret",
        }
        script = ["sh", str(REPO / "deploy/postgres/init-roles.sh")]
        done = await asyncio.to_thread(
            subprocess.run, script, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        base = f"postgresql://{{}}@127.0.0.1:{server.port}/notify"
        await asyncio.to_thread(apply_migrations, base.format("notify_owner"))

        pool = await create_pool(base.format("notify_app"), min_size=1, max_size=2)
        try:
            service = NotificationService(PgNotificationStore(pool), SystemClock())
            n = await service.create("t", NewNotification(Channel.SMS, "+14155550123", "hi"))
            assert (await service.get("t", n.id)).status.value == "pending"
            async with pool.acquire() as conn:
                for ddl in ("CREATE TABLE sneaky (x int)", "DROP TABLE notifications", "TRUNCATE outbox"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(ddl)
                assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(server.destroy)
