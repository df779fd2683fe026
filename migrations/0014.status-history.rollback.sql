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
DROP TABLE status_history;
