DROP FUNCTION IF EXISTS take_rate_tokens(text, double precision, double precision, integer);
DROP TABLE IF EXISTS rate_buckets;
