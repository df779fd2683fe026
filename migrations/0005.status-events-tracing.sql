-- Status events through the outbox, and each notification's trace context.
-- depends: 0004.keys-batches-idempotency

-- The W3C traceparent of the span that accepted the notification: every later publish (the first, retries,
-- replays, recoveries) continues this trace, so one trace follows the notification end to end.
ALTER TABLE notifications ADD COLUMN trace_context text CHECK (trace_context IS NULL OR char_length(trace_context) <= 512);

-- A 'status' record is one status transition, for the status topic (WebSocket relays in every API).
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox
    ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('dispatch', 'dead_letter', 'status')),
    ADD COLUMN payload jsonb;

-- Dispatch records are relayed by every relay at once (SKIP LOCKED); status records by one relay at a time,
-- in id order, so the events of a notification reach the status topic in the order they happened.
DROP INDEX outbox_unpublished;
CREATE INDEX outbox_unpublished_dispatch ON outbox (id) WHERE published_at IS NULL AND kind <> 'status';
CREATE INDEX outbox_unpublished_status ON outbox (id) WHERE published_at IS NULL AND kind = 'status';

-- Every status change writes its event in the same transaction as the change, whichever statement made it
-- (claim, result, cancel, scheduled release, lease recovery, replay, expiry): none can be missed or invented.
CREATE FUNCTION notifications_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
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
                'timestamp', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_status_event
    AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notifications_status_event();
