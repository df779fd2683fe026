-- Highest priority first wherever work waits in PostgreSQL, so a high-priority notification never queues
-- behind a backlog of low ones before it reaches Kafka (where the worker's dispatcher takes over):
-- 1. The relay publishes dispatch records by priority, then in id order (a large import, or an outbox that
--    grew while the broker was down). A notification keeps its priority, so its own records stay in id
--    order. The expression is the one the relay orders by (adapters/postgres/outbox.py); status events keep
--    their own index and id order.
-- 2. The sweeps release due scheduled notifications, due retries and parked notifications of a resumed
--    channel one priority after another (adapters/postgres/sweeps.py): each reads its own range of an index
--    that leads with the priority.
-- depends: 0017.rate_buckets

DROP INDEX outbox_unpublished_dispatch;
CREATE INDEX outbox_unpublished_dispatch ON outbox
    ((CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END), id)
    WHERE published_at IS NULL AND kind <> 'status';

DROP INDEX notifications_due_scheduled;
CREATE INDEX notifications_due_scheduled ON notifications (priority, scheduled_at) WHERE status = 'scheduled';
DROP INDEX notifications_due_retry;
CREATE INDEX notifications_due_retry ON notifications (priority, next_attempt_at) WHERE status = 'retrying';
CREATE INDEX notifications_parked ON notifications (priority) WHERE status = 'pending' AND enqueued_at IS NULL;
