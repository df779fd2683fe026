DROP INDEX outbox_dispatch_of_notification;
ALTER TABLE outbox DROP COLUMN kafka_offset, DROP COLUMN kafka_partition;
