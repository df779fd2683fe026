ALTER TABLE notifications DROP COLUMN request_hash;
DROP TABLE batches;
DROP TABLE api_keys;
