"""Schema migrations with yoyo (SQL files in ``migrations/``), and database creation for local stacks."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def migrations_dir() -> Path:
    """The SQL migrations: packaged into the wheel as ``notify/_migrations``, or the repository's folder."""
    packaged = importlib.resources.files("notify") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[4] / "migrations"


def _yoyo_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    scheme = "postgresql+psycopg" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, *parts[1:]))


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock (safe if several processes migrate at once).
    Returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(database_url))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()  # yoyo keeps it open; an idle session blocks CREATE DATABASE ... TEMPLATE


async def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it does not exist. Returns True if created."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    conn = await asyncpg.connect(admin_url)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()
