-- Delivery statistics per tenant, channel and minute, kept by a trigger: GET /api/v1/metrics reads these
-- small rows instead of scanning notifications.
-- depends: 0004.keys-batches-idempotency

-- The upper bounds (ms, exclusive) of the latency histogram's buckets, roughly exponential from 10 ms to 1 h.
-- Bucket k (1-based) of latency_hist counts latencies in [bound[k-1], bound[k]) with bound[0] = 0; the last
-- bucket (one more than there are bounds) counts everything from 1 h up. Never change these in place: rows
-- already written would be read with the wrong bounds (notify.domain.stats.LATENCY_BOUNDS_MS mirrors them,
-- and a test checks that the two agree).
CREATE FUNCTION delivery_latency_bounds_ms() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[10, 25, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500, 4000, 6000, 10000, 15000, 30000,
                 60000, 120000, 300000, 600000, 1200000, 3600000]::double precision[]
$$;

-- One row per (tenant, channel, minute, shard). The shard spreads concurrent workers over a few rows so they
-- rarely wait on each other's row lock; readers sum the shards.
CREATE TABLE delivery_stats (
    tenant_id      text NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('sms', 'email', 'push')),
    minute         timestamptz NOT NULL,          -- start of the UTC minute of the sent_at / failed_at
    shard          smallint NOT NULL CHECK (shard BETWEEN 0 AND 3),
    sent           bigint NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed         bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
    latency_sum_ms double precision NOT NULL DEFAULT 0,   -- of the delivered ones
    latency_hist   bigint[] NOT NULL,                     -- of the delivered ones, per bucket (see above)
    -- (tenant, minute) leads: a window is one range scan of one tenant's rows.
    PRIMARY KEY (tenant_id, minute, channel, shard),
    CHECK (cardinality(latency_hist) = cardinality(delivery_latency_bounds_ms()) + 1)
) WITH (fillfactor = 70);  -- room on the page for HOT updates of the counters

-- The retention purge deletes by age across tenants.
CREATE INDEX delivery_stats_minute ON delivery_stats (minute);

-- Counts a notification that became delivered or failed, in the same transaction as that change: the figures
-- stay exact whatever process dies when. Latency (delivered only) runs from when the notification was due
-- (created, or its scheduled time) to when the provider accepted it. A failed notification replayed and
-- failing again counts as failed twice: these are delivery outcomes per minute, not per notification.
CREATE FUNCTION delivery_stats_on_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bounds    CONSTANT double precision[] := delivery_latency_bounds_ms();
    v_shard   CONSTANT smallint := get_byte(uuid_send(NEW.id), 15) % 4;
    v_minute  timestamptz;
    v_latency double precision;
    v_bucket  integer;
    v_hist    bigint[] := array_fill(0::bigint, ARRAY[cardinality(bounds) + 1]);
BEGIN
    IF NEW.status = 'delivered' THEN
        v_minute := date_bin('1 minute', NEW.sent_at, timestamptz '2000-01-01 00:00:00+00');
        v_latency := greatest(0, 1000 * extract(epoch FROM
            NEW.sent_at - greatest(NEW.created_at, coalesce(NEW.scheduled_at, NEW.created_at))))::double precision;
        v_bucket := width_bucket(v_latency, bounds) + 1;   -- width_bucket: how many bounds are <= latency
        v_hist[v_bucket] := 1;
        INSERT INTO delivery_stats AS s (tenant_id, channel, minute, shard, sent, latency_sum_ms, latency_hist)
        VALUES (NEW.tenant_id, NEW.channel, v_minute, v_shard, 1, v_latency, v_hist)
        ON CONFLICT (tenant_id, minute, channel, shard) DO UPDATE
            SET sent = s.sent + 1,
                latency_sum_ms = s.latency_sum_ms + EXCLUDED.latency_sum_ms,
                latency_hist[v_bucket] = s.latency_hist[v_bucket] + 1;
    ELSE
        v_minute := date_bin('1 minute', coalesce(NEW.failed_at, NEW.updated_at),
                             timestamptz '2000-01-01 00:00:00+00');
        INSERT INTO delivery_stats AS s (tenant_id, channel, minute, shard, failed, latency_hist)
        VALUES (NEW.tenant_id, NEW.channel, v_minute, v_shard, 1, v_hist)
        ON CONFLICT (tenant_id, minute, channel, shard) DO UPDATE
            SET failed = s.failed + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER delivery_stats_on_status
    AFTER UPDATE OF status ON notifications
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('delivered', 'failed'))
    EXECUTE FUNCTION delivery_stats_on_status();
