-- The operator console's needs.
-- 1. Status events carry the notification's priority (the live feed filters on it).
-- 2. Recent attempts by time (each provider's error rate).
-- 3. worker_reports: what each worker process knows and PostgreSQL does not — its consumer lag, the state of
--    its circuit breakers, the rate limits it applies — upserted every NOTIFY_METRICS_REFRESH_S, so the API
--    (which runs none of them) can show them. A row not refreshed for a while is a worker that went away.
-- depends: 0014.status-history

CREATE TABLE worker_reports (
    worker_id   text PRIMARY KEY,
    reported_at timestamptz NOT NULL,
    lag         jsonb NOT NULL,   -- {"<topic>": records not yet committed, for this worker's partitions}
    breakers    jsonb NOT NULL,   -- {"<channel>:<provider>": "closed" | "half_open" | "open"}
    rate_limits jsonb NOT NULL    -- {"<channel>": messages per second, or null for none}
);

-- Each provider's recent error rate reads the attempts of the last minutes.
CREATE INDEX delivery_attempts_finished ON delivery_attempts (finished_at);

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
    )
    INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at, kind, payload)
    SELECT c.id, c.priority, c.channel, c.correlation_id, c.updated_at, 'status',
           jsonb_build_object(
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
               'timestamp', to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    FROM changed c
    ORDER BY c.id;
    RETURN NULL;
END
$$;
