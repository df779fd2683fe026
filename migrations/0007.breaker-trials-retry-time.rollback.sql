ALTER TABLE delivery_attempts DROP COLUMN breaker_trial;

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
                'attempt', CASE WHEN NEW.status = 'processing' THEN NEW.attempts + 1 ELSE NEW.attempts END,
                'error', CASE WHEN NEW.status IN ('retrying', 'failed') THEN NEW.error_message END,
                'provider', NEW.provider,
                'timestamp', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END
$$;
