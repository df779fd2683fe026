DROP INDEX outbox_unpublished_dispatch;
CREATE INDEX outbox_unpublished_dispatch ON outbox (id) WHERE published_at IS NULL AND kind <> 'status';
