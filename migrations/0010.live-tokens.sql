-- Short-lived, single-use tokens for the WebSocket: a browser opens /ws?token=... instead of putting the API
-- key in a URL (where proxies and browser history would keep it).
-- depends: 0009.dispatch-positions

CREATE TABLE live_tokens (
    token_hash text PRIMARY KEY,            -- sha256 of the token; the token itself is never stored
    key_id     uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX live_tokens_expiry ON live_tokens (expires_at);
