-- Templates.
-- depends: 0002.delivery-engine

-- A notification keeps its rendered content and subject (plus template_id and template_variables as a
-- record), so notifications.template_id deliberately has no foreign key: changing or deleting a template
-- must never change, block or cascade into notifications already accepted.
CREATE TABLE templates (
    id          uuid PRIMARY KEY,                    -- UUIDv7: its timestamp is created_at
    tenant_id   text NOT NULL,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    channel     text NOT NULL CHECK (channel IN ('sms', 'email', 'push')),
    subject     text CHECK (subject IS NULL OR (channel = 'email' AND char_length(subject) <= 998)),
    body        text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 100000),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT templates_tenant_name UNIQUE (tenant_id, name)
);

-- GET /templates pages through one tenant's templates by id, newest first.
CREATE INDEX templates_tenant_id ON templates (tenant_id, id);
