-- The relay publishes dispatch records highest priority first (then in id order within a priority), so a
-- high-priority notification accepted behind a backlog of low ones (a big import, or an outbox that grew while
-- the broker was down) goes out with the next relay batch instead of after the backlog. A notification keeps
-- its priority, so its own records stay in id order. The expression is the one the relay orders by
-- (adapters/postgres/outbox.py); status events keep their own index and id order.
-- depends: 0017.rate_buckets

DROP INDEX outbox_unpublished_dispatch;
CREATE INDEX outbox_unpublished_dispatch ON outbox
    ((CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END), id)
    WHERE published_at IS NULL AND kind <> 'status';
