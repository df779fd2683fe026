-- Notifications and their transactional outbox.
-- depends:

CREATE TABLE notifications (
    id                  uuid PRIMARY KEY,            -- UUIDv7: its timestamp is created_at
    tenant_id           text NOT NULL,
    batch_id            uuid,
    channel             text NOT NULL CHECK (channel IN ('sms', 'email', 'push')),
    recipient           text NOT NULL CHECK (char_length(recipient) BETWEEN 1 AND 4096),
    subject             text CHECK (subject IS NULL OR (channel = 'email' AND char_length(subject) <= 998)),
    content             text NOT NULL,
    priority            text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    status              text NOT NULL CHECK (status IN ('scheduled', 'pending', 'processing', 'retrying',
                                                        'delivered', 'failed', 'cancelled', 'expired')),
    scheduled_at        timestamptz,
    expires_at          timestamptz,
    idempotency_key     text CHECK (idempotency_key IS NULL OR char_length(idempotency_key) BETWEEN 1 AND 255),
    template_id         uuid,
    template_variables  jsonb,
    metadata            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_retries         integer NOT NULL CHECK (max_retries >= 0),
    provider            text,
    provider_message_id text,
    error_message       text,
    sent_at             timestamptz,
    failed_at           timestamptz,
    lease_owner         text,                        -- the claim holding a 'processing' notification
    lease_expires_at    timestamptz,
    enqueued_at         timestamptz,                 -- when its last dispatch record was written
    correlation_id      text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT content_fits_channel CHECK (char_length(content) <= CASE channel
        WHEN 'sms' THEN 1600 WHEN 'email' THEN 100000 ELSE 4096 END),
    CONSTRAINT delivered_has_sent_at CHECK (status <> 'delivered' OR sent_at IS NOT NULL),
    CONSTRAINT processing_has_lease CHECK (status <> 'processing'
        OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT scheduled_has_time CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL),
    CONSTRAINT expiry_after_schedule CHECK (expires_at IS NULL OR scheduled_at IS NULL OR expires_at > scheduled_at)
);

-- GET /notifications: every filter is tenant-scoped and pages by id (newest first); date filters become an
-- id range on the same indexes because ids are time-ordered.
CREATE INDEX notifications_tenant_id ON notifications (tenant_id, id);
CREATE INDEX notifications_tenant_status ON notifications (tenant_id, status, id);
CREATE INDEX notifications_tenant_channel ON notifications (tenant_id, channel, id);
CREATE INDEX notifications_tenant_priority ON notifications (tenant_id, priority, id);
CREATE INDEX notifications_tenant_recipient ON notifications (tenant_id, recipient, id);
CREATE INDEX notifications_batch ON notifications (batch_id, id) WHERE batch_id IS NOT NULL;
CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Sweeps (scheduler and recovery): small partial indexes over the rows they look for.
CREATE INDEX notifications_due_scheduled ON notifications (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX notifications_lease_expiry ON notifications (lease_expires_at) WHERE status = 'processing';
CREATE INDEX notifications_pending_enqueued ON notifications (enqueued_at) WHERE status = 'pending';

CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    priority        text NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    channel         text NOT NULL CHECK (channel IN ('sms', 'email', 'push')),
    correlation_id  text,
    created_at      timestamptz NOT NULL,
    published_at    timestamptz
);

-- The relay reads unpublished records in id order; the purge finds old published ones.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX outbox_notification ON outbox (notification_id);
