-- Status events and delivery statistics written once per statement instead of once per row.
-- depends: 0010.live-tokens

-- The worker records a whole group of results (and claims a group of notifications) in one UPDATE. Row-level
-- triggers ran an INSERT per changed row; these statement-level triggers see every changed row at once
-- (transition tables) and write all status events in one INSERT and all statistics in one upsert per
-- (tenant, minute, channel, shard). What they write is unchanged: one event per status change, exact counts.
-- A trigger with transition tables cannot name columns (UPDATE OF status) or have a WHEN clause, so both
-- fire after every UPDATE of notifications and find the rows whose status changed themselves.

DROP TRIGGER notifications_status_event ON notifications;
DROP TRIGGER delivery_stats_on_status ON notifications;

CREATE OR REPLACE FUNCTION notifications_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at, kind, payload)
    SELECT n.id, n.priority, n.channel, n.correlation_id, n.updated_at, 'status',
           jsonb_build_object(
               'notification_id', n.id,
               'tenant_id', n.tenant_id,
               'batch_id', n.batch_id,
               'channel', n.channel,
               'status', n.status,
               'previous_status', o.status,
               -- 'processing' announces the attempt being made; every other status the attempts made
               'attempt', CASE WHEN n.status = 'processing' THEN n.attempts + 1 ELSE n.attempts END,
               'error', CASE WHEN n.status IN ('retrying', 'failed') THEN n.error_message END,
               'provider', n.provider,
               'next_attempt_at', CASE WHEN n.status = 'retrying' THEN
                   to_char(n.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
               'timestamp', to_char(n.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status
    ORDER BY n.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_status_event
    AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION notifications_status_event();

-- Counts the notifications that became delivered or failed (rules as in 0006: latency of the delivered ones
-- from when they were due to when the provider accepted them; a replayed notification failing again counts
-- twice). Rows are upserted in key order, so two statements running at once lock shared rows in the same
-- order and cannot deadlock.
CREATE OR REPLACE FUNCTION delivery_stats_on_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bounds  CONSTANT double precision[] := delivery_latency_bounds_ms();
    buckets CONSTANT integer := cardinality(bounds) + 1;
BEGIN
    WITH outcome AS (
        SELECT n.tenant_id, n.channel, get_byte(uuid_send(n.id), 15) % 4 AS shard,
               n.status = 'delivered' AS delivered,
               date_bin('1 minute',
                        CASE WHEN n.status = 'delivered' THEN n.sent_at ELSE coalesce(n.failed_at, n.updated_at) END,
                        timestamptz '2000-01-01 00:00:00+00') AS minute,
               CASE WHEN n.status = 'delivered' THEN greatest(0, 1000 * extract(epoch FROM
                   n.sent_at - greatest(n.created_at, coalesce(n.scheduled_at, n.created_at))))::double precision
               END AS latency_ms
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.status IS DISTINCT FROM n.status AND n.status IN ('delivered', 'failed')
    ),
    per_key AS (
        SELECT tenant_id, channel, minute, shard,
               count(*) FILTER (WHERE delivered) AS sent,
               count(*) FILTER (WHERE NOT delivered) AS failed,
               coalesce(sum(latency_ms), 0) AS latency_sum_ms
        FROM outcome GROUP BY tenant_id, channel, minute, shard
    ),
    per_bucket AS (   -- width_bucket: how many bounds are <= latency; bucket k is 1-based
        SELECT tenant_id, channel, minute, shard, width_bucket(latency_ms, bounds) + 1 AS bucket, count(*) AS c
        FROM outcome WHERE delivered GROUP BY 1, 2, 3, 4, 5
    )
    INSERT INTO delivery_stats AS s (tenant_id, channel, minute, shard, sent, failed, latency_sum_ms, latency_hist)
    SELECT k.tenant_id, k.channel, k.minute, k.shard, k.sent, k.failed, k.latency_sum_ms,
           ARRAY(SELECT coalesce(sum(b.c), 0)::bigint
                 FROM generate_series(1, buckets) AS g(i)
                 LEFT JOIN per_bucket b
                        ON (b.tenant_id, b.channel, b.minute, b.shard, b.bucket) = (k.tenant_id, k.channel, k.minute, k.shard, g.i)
                 GROUP BY g.i ORDER BY g.i)
    FROM per_key k
    ORDER BY k.tenant_id, k.minute, k.channel, k.shard
    ON CONFLICT (tenant_id, minute, channel, shard) DO UPDATE
        SET sent = s.sent + EXCLUDED.sent,
            failed = s.failed + EXCLUDED.failed,
            latency_sum_ms = s.latency_sum_ms + EXCLUDED.latency_sum_ms,
            latency_hist = ARRAY(SELECT a + b FROM unnest(s.latency_hist, EXCLUDED.latency_hist)
                                     WITH ORDINALITY AS u(a, b, i) ORDER BY i);
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_stats_on_status
    AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION delivery_stats_on_status();
