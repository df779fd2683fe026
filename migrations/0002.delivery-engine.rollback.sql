DROP TABLE delivery_controls;
ALTER TABLE outbox DROP COLUMN kind;
DROP TABLE delivery_attempts;
DROP INDEX notifications_dead_letters;
DROP INDEX notifications_due_retry;
ALTER TABLE notifications DROP CONSTRAINT retrying_has_time, DROP COLUMN attempt_base, DROP COLUMN next_attempt_at;
