DELETE FROM delivery_controls WHERE tenant_id <> '*';
ALTER TABLE delivery_controls DROP CONSTRAINT delivery_controls_pkey;
ALTER TABLE delivery_controls DROP COLUMN tenant_id;
ALTER TABLE delivery_controls ADD PRIMARY KEY (channel);
ALTER TABLE api_keys DROP COLUMN scope;
