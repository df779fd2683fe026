from __future__ import annotations

import json
from typing import Any

import asyncpg

# What the database's being down or overwhelmed looks like to a client: the API answers these with 503.
POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncpg.PostgresConnectionError,  # cannot connect now (starting up, shutting down), connection lost
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout, or cancelled by an operator
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,  # a connection broken mid-operation ("cannot switch to state ...")
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool. notify sets no session state (no SET, LISTEN,
    cursors or session advisory locks; its advisory lock is per transaction), so asyncpg's default reset, a
    round trip of ``RESET ALL; UNLISTEN *; ...`` on every release, buys nothing: only a transaction left open
    (a caller cancelled mid-way) must not reach the next user."""
    if conn.is_in_transaction():
        await conn.reset()


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset, **kwargs
    )
    assert pool is not None
    return pool
