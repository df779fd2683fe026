DROP INDEX notifications_parked;
DROP INDEX notifications_due_retry;
CREATE INDEX notifications_due_retry ON notifications (next_attempt_at) WHERE status = 'retrying';
DROP INDEX notifications_due_scheduled;
CREATE INDEX notifications_due_scheduled ON notifications (scheduled_at) WHERE status = 'scheduled';
DROP INDEX outbox_unpublished_dispatch;
CREATE INDEX outbox_unpublished_dispatch ON outbox (id) WHERE published_at IS NULL AND kind <> 'status';
