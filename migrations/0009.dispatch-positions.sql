-- Where each published record landed in Kafka, so the scheduler re-enqueues only what was really lost.
-- depends: 0008.key-scopes-tenant-pause

ALTER TABLE outbox
    ADD COLUMN kafka_partition integer CHECK (kafka_partition IS NULL OR kafka_partition >= 0),
    ADD COLUMN kafka_offset bigint CHECK (kafka_offset IS NULL OR kafka_offset >= 0);

-- The sweep looks up a stale notification's dispatch records (few: only notifications pending for minutes).
CREATE INDEX outbox_dispatch_of_notification ON outbox (notification_id) WHERE kind = 'dispatch';
