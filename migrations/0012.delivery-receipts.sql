-- Receipts: what a provider reports after it accepted a message (Twilio's status callback: the handset got it,
-- or not). Kept apart from the notification's status, which says what notify did: "delivered" is the
-- provider's acceptance; a receipt is the outcome at the handset or mailbox, when the provider reports one.
-- depends: 0011.statement-level-status-triggers

CREATE TABLE delivery_receipts (
    id                  bigserial PRIMARY KEY,
    notification_id     uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    status              text NOT NULL,   -- delivered | undelivered | bounced | complained | in_transit
    provider_status     text NOT NULL,   -- the provider's own word, e.g. Twilio's "undelivered"
    error_code          text,
    received_at         timestamptz NOT NULL
);
CREATE INDEX delivery_receipts_notification ON delivery_receipts (notification_id, id);

-- A receipt names the message by the provider's id.
CREATE INDEX notifications_provider_message ON notifications (provider_message_id, provider)
    WHERE provider_message_id IS NOT NULL;
