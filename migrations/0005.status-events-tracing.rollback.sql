DROP TRIGGER notifications_status_event ON notifications;
DROP FUNCTION notifications_status_event();
DELETE FROM outbox WHERE kind = 'status';
DROP INDEX outbox_unpublished_status;
DROP INDEX outbox_unpublished_dispatch;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
ALTER TABLE outbox DROP COLUMN payload, DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('dispatch', 'dead_letter'));
ALTER TABLE notifications DROP COLUMN trace_context;
