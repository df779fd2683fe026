"""A tenant's own providers in PostgreSQL: encrypted at rest (a dump holds no secret), readable only with the
key."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from cryptography.fernet import Fernet, InvalidToken

from notify.adapters.postgres.tenant_providers import PgTenantProviders
from notify.domain.model import Channel

SECRET = "twilio-auth-token-0123456789"
ENTRIES = f'[{{"type": "twilio", "name": "own", "auth_token": "{SECRET}"}}]'
AT = datetime(2026, 1, 1, tzinfo=UTC)


async def test_the_list_is_stored_encrypted_and_read_back_with_the_key(pool: asyncpg.Pool) -> None:
    key = Fernet.generate_key()
    store = PgTenantProviders(pool, Fernet(key))
    await store.put("a", Channel.SMS, ENTRIES, AT)
    raw = await pool.fetchval("SELECT providers FROM tenant_providers WHERE tenant_id = 'a'")
    assert SECRET.encode() not in bytes(raw) and b"twilio" not in bytes(raw)
    stored = await store.get("a", Channel.SMS)
    assert stored is not None and (stored.providers, stored.updated_at) == (ENTRIES, AT)
    await store.put("a", Channel.SMS, "[]", AT)  # replaced, not added
    assert (await store.all("a"))[Channel.SMS].providers == "[]"
    assert await store.get("a", Channel.EMAIL) is None and await store.get("b", Channel.SMS) is None
    assert await store.delete("a", Channel.SMS) and not await store.delete("a", Channel.SMS)


async def test_another_key_cannot_read_it(pool: asyncpg.Pool) -> None:
    await PgTenantProviders(pool, Fernet(Fernet.generate_key())).put("a", Channel.SMS, ENTRIES, AT)
    with pytest.raises(InvalidToken):
        await PgTenantProviders(pool, Fernet(Fernet.generate_key())).get("a", Channel.SMS)
