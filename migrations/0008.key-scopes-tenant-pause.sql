-- API key scopes (operators hold 'admin' keys) and delivery pauses per tenant as well as global.
-- depends: 0007.breaker-trials-retry-time

ALTER TABLE api_keys
    ADD COLUMN scope text NOT NULL DEFAULT 'tenant' CHECK (scope IN ('tenant', 'admin'));

-- A pause is for everyone (tenant_id '*', the operator's switch) or for one tenant's own traffic; for every
-- channel ('*') or one. Existing rows were global.
ALTER TABLE delivery_controls
    ADD COLUMN tenant_id text NOT NULL DEFAULT '*' CHECK (char_length(tenant_id) BETWEEN 1 AND 200);
ALTER TABLE delivery_controls DROP CONSTRAINT delivery_controls_pkey;
ALTER TABLE delivery_controls ADD PRIMARY KEY (tenant_id, channel);
