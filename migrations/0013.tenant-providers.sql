-- A tenant's own providers (its credentials), per channel, used instead of the operator's. The list is stored
-- encrypted (Fernet, with NOTIFY_PROVIDER_CREDENTIALS_KEY, which the database never sees).
-- depends: 0012.delivery-receipts

CREATE TABLE tenant_providers (
    tenant_id  text NOT NULL,
    channel    text NOT NULL,
    providers  bytea NOT NULL,       -- the encrypted JSON list of provider entries
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);
