"""Every migration's rollback file undoes it: rolling the whole schema back leaves nothing of ours, and
applying it again gives the same schema as the first time (so a release can be stepped back)."""

from __future__ import annotations

import asyncio

import asyncpg

from notify.adapters.postgres.migrate import _yoyo_url, apply_migrations, migrations_dir

_SCHEMA = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '_yoyo%'
        AND table_name <> 'yoyo_lock'
UNION ALL SELECT 'index ' || indexdef FROM pg_indexes
    WHERE schemaname = 'public' AND tablename NOT LIKE '_yoyo%' AND tablename <> 'yoyo_lock'
UNION ALL SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'function ' || p.proname || ' ' || md5(p.prosrc) FROM pg_proc p
    JOIN pg_namespace ns ON ns.oid = p.pronamespace WHERE ns.nspname = 'public'
UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
    WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '_yoyo%'
        AND conrelid::regclass::text <> 'yoyo_lock'
ORDER BY 1
"""


def _rollback_all(database_url: str) -> list[str]:
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(database_url))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            applied = backend.to_rollback(migrations)
            backend.rollback_migrations(applied)
        return [m.id for m in applied]
    finally:
        backend.connection.close()


async def _schema(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await conn.fetch(_SCHEMA)]
    finally:
        await conn.close()


async def test_every_migration_rolls_back_and_applies_again(database_url: str) -> None:
    migrated = await _schema(database_url)
    assert any(line.startswith("trigger CREATE TRIGGER notifications_status_event") for line in migrated)

    rolled_back = await asyncio.to_thread(_rollback_all, database_url)
    files = sorted(f.name for f in migrations_dir().glob("*.sql") if not f.name.endswith(".rollback.sql"))
    assert rolled_back == [name.removesuffix(".sql") for name in reversed(files)]
    assert await _schema(database_url) == []

    reapplied = await asyncio.to_thread(apply_migrations, database_url)
    assert reapplied == list(reversed(rolled_back))
    assert await _schema(database_url) == migrated
