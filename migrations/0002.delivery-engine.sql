-- Retries, the attempts ledger, dead letters and delivery pause/resume.
-- depends: 0001.initial

ALTER TABLE notifications
    ADD COLUMN next_attempt_at timestamptz,
    -- attempts made before the last replay: a replay gives fresh retries and keeps the history
    ADD COLUMN attempt_base integer NOT NULL DEFAULT 0 CHECK (attempt_base >= 0),
    ADD CONSTRAINT retrying_has_time CHECK (status <> 'retrying' OR next_attempt_at IS NOT NULL);

-- The scheduler releases due retries; dead letters are listed newest first per tenant.
CREATE INDEX notifications_due_retry ON notifications (next_attempt_at) WHERE status = 'retrying';
CREATE INDEX notifications_dead_letters ON notifications (tenant_id, id) WHERE status = 'failed';

CREATE TABLE delivery_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         integer NOT NULL CHECK (attempt >= 1),
    provider        text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'transient', 'permanent')),
    http_status     integer,
    error           text,
    latency_ms      double precision NOT NULL CHECK (latency_ms >= 0),
    CHECK (finished_at >= started_at)
);
CREATE INDEX delivery_attempts_notification ON delivery_attempts (notification_id, id);

ALTER TABLE outbox
    ADD COLUMN kind text NOT NULL DEFAULT 'dispatch' CHECK (kind IN ('dispatch', 'dead_letter'));

-- One row per paused scope: '*' (every channel) or a channel. Read by every worker about twice a second.
CREATE TABLE delivery_controls (
    channel    text PRIMARY KEY CHECK (channel IN ('*', 'sms', 'email', 'push')),
    paused     boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
