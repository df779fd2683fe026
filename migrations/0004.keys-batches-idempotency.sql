-- API keys and tenants, batches, idempotent answers.
-- depends: 0002.delivery-engine

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL CHECK (char_length(tenant_id) BETWEEN 1 AND 200),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    prefix           text NOT NULL,                -- the key's first characters, safe to show
    key_hash         text NOT NULL UNIQUE,         -- sha256 of the whole key; the key itself is never stored
    rate_limit_per_s double precision CHECK (rate_limit_per_s IS NULL OR rate_limit_per_s > 0),
    created_at       timestamptz NOT NULL,
    revoked_at       timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE batches (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    total           integer NOT NULL CHECK (total BETWEEN 1 AND 1000),
    idempotency_key text CHECK (idempotency_key IS NULL OR char_length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    text,
    correlation_id  text,
    created_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX batches_idempotency ON batches (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A fingerprint of the request that created the notification: a repeated Idempotency-Key with the same
-- fingerprint replays the answer, with another one it is a conflict.
ALTER TABLE notifications ADD COLUMN request_hash text;
