-- Back to the row-level triggers of 0005-0007.
DROP TRIGGER notifications_status_event ON notifications;
DROP TRIGGER delivery_stats_on_status ON notifications;

CREATE OR REPLACE FUNCTION notifications_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (notification_id, priority, channel, correlation_id, created_at, kind, payload)
    VALUES (NEW.id, NEW.priority, NEW.channel, NEW.correlation_id, NEW.updated_at, 'status',
            jsonb_build_object(
                'notification_id', NEW.id,
                'tenant_id', NEW.tenant_id,
                'batch_id', NEW.batch_id,
                'channel', NEW.channel,
                'status', NEW.status,
                'previous_status', OLD.status,
                -- 'processing' announces the attempt being made; every other status the attempts made
                'attempt', CASE WHEN NEW.status = 'processing' THEN NEW.attempts + 1 ELSE NEW.attempts END,
                'error', CASE WHEN NEW.status IN ('retrying', 'failed') THEN NEW.error_message END,
                'provider', NEW.provider,
                'next_attempt_at', CASE WHEN NEW.status = 'retrying' THEN
                    to_char(NEW.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
                'timestamp', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_status_event
    AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notifications_status_event();

CREATE OR REPLACE FUNCTION delivery_stats_on_status() RETURNS trigger
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
