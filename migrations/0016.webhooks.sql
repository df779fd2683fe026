-- Status webhooks (issue 13) and resumable streams.
-- 1. Every status event carries its id in status_history (event_id): one increasing sequence that the live
--    stream, the resumable stream (since / Last-Event-ID) and webhooks share.
-- 2. webhook_endpoints: a tenant's receivers. The signing secret is kept (it must sign), with the previous one
--    still valid until previous_secret_until after a rotation.
-- 3. webhook_deliveries: one row per event per endpoint, written by the status trigger in the transaction of
--    the status change, delivered by the workers (retries with backoff, a lease like a notification's claim);
--    webhook_attempts: every call made for one.
-- depends: 0015.console

CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    tenant_id             text NOT NULL,
    url                   text NOT NULL,
    statuses              text[] NOT NULL DEFAULT '{}',   -- empty: every status
    channels              text[] NOT NULL DEFAULT '{}',   -- empty: every channel
    enabled               boolean NOT NULL DEFAULT true,
    secret                text NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    failing_since         timestamptz,                    -- first failure since the last success
    disabled_reason       text,                           -- set when notify disabled it
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    last_http_status integer,
    last_error       text,
    last_latency_ms  double precision,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, notification_id, id)
    WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    http_status integer,
    error       text,
    latency_ms  double precision NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE OR REPLACE FUNCTION notifications_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT n.*, o.status AS old_status
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.status IS DISTINCT FROM n.status
    ),
    history AS (
        INSERT INTO status_history (notification_id, status, previous_status, attempt, error, provider, at)
        SELECT id, status, old_status,
               CASE WHEN status = 'processing' THEN attempts + 1 ELSE attempts END,
               CASE WHEN status IN ('retrying', 'failed') THEN error_message END,
               provider, updated_at
        FROM changed ORDER BY id
        RETURNING id AS event_id, notification_id
    ),
    event AS (
        -- One notification changes at most once in a statement: its history row is its event.
        SELECT c.*, h.event_id,
               jsonb_build_object(
                   'event_id', h.event_id,
                   'notification_id', c.id,
                   'tenant_id', c.tenant_id,
                   'batch_id', c.batch_id,
                   'channel', c.channel,
                   'priority', c.priority,
                   'status', c.status,
                   'previous_status', c.old_status,
                   -- 'processing' announces the attempt being made; every other status the attempts made
                   'attempt', CASE WHEN c.status = 'processing' THEN c.attempts + 1 ELSE c.attempts END,
                   'error', CASE WHEN c.status IN ('retrying', 'failed') THEN c.error_message END,
                   'provider', c.provider,
                   'next_attempt_at', CASE WHEN c.status = 'retrying' THEN
                       to_char(c.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
                   'timestamp', to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               ) AS payload
        FROM changed c JOIN history h ON h.notification_id = c.id
    ),
    webhooks AS (
        -- Each event, for each of the tenant's enabled endpoints that wants it: delivered by the workers.
        INSERT INTO webhook_deliveries (endpoint_id, notification_id, event_id, payload, created_at, next_attempt_at)
        SELECT w.id, e.id, e.event_id, e.payload - 'tenant_id', e.updated_at, e.updated_at
        FROM event e JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.enabled
         AND (cardinality(w.statuses) = 0 OR e.status = ANY (w.statuses))
         AND (cardinality(w.channels) = 0 OR e.channel = ANY (w.channels))
        ORDER BY e.event_id, w.id
    )
    INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at, kind, payload)
    SELECT e.id, e.priority, e.channel, e.correlation_id, e.updated_at, 'status', e.payload
    FROM event e
    ORDER BY e.id;
    RETURN NULL;
END
$$;
