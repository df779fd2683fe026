-- Breaker trial calls in the attempts ledger, and the time of the next attempt in 'retrying' status events.
-- depends: 0005.status-events-tracing 0006.delivery-stats

-- A half-open breaker's trial call that failed is recorded, but does not use up one of the notification's
-- retries (an open breaker never fails a notification).
ALTER TABLE delivery_attempts ADD COLUMN breaker_trial boolean NOT NULL DEFAULT false;

-- 'retrying' events say when the next attempt is due (null for every other status).
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
