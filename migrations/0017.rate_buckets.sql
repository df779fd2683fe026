-- Rate limits that hold for the whole deployment (issue 14): one token bucket per limit (a channel's provider
-- rate, an API key's request rate) shared by every worker and API process. A process takes a slice of tokens
-- at a time (take_rate_tokens, one round trip per slice) and spends them locally, so the database sees a few
-- calls per second per process, not one per message.
-- UNLOGGED: a bucket is seconds of state; after a PostgreSQL crash it restarts full, which costs at most one
-- burst, and writing it to the WAL (and to replicas) would buy nothing.
-- depends: 0016.webhooks

CREATE UNLOGGED TABLE rate_buckets (
    name        text PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_at timestamptz NOT NULL
);

-- Refill the bucket for the time since it was last touched (at most to capacity), grant up to p_want whole
-- tokens, and say how long until another full slice will be there (so a caller need not ask before). The row lock serialises
-- concurrent callers; the time is read after it is held, so a caller that waited for the lock cannot move
-- refilled_at backwards.
CREATE FUNCTION take_rate_tokens(
    p_name text, p_rate double precision, p_capacity double precision, p_want integer
) RETURNS TABLE (granted integer, wait_s double precision) LANGUAGE plpgsql AS $$
DECLARE
    last_at   timestamptz;
    now_ts    timestamptz;
    available double precision;
BEGIN
    INSERT INTO rate_buckets (name, tokens, refilled_at) VALUES (p_name, p_capacity, clock_timestamp())
    ON CONFLICT (name) DO NOTHING;
    SELECT b.tokens, b.refilled_at INTO available, last_at FROM rate_buckets b WHERE b.name = p_name FOR UPDATE;
    now_ts := clock_timestamp();
    available := LEAST(p_capacity, available + GREATEST(0, EXTRACT(EPOCH FROM now_ts - last_at)) * p_rate);
    granted := GREATEST(0, LEAST(p_want, floor(available)))::integer;
    UPDATE rate_buckets SET tokens = available - granted, refilled_at = now_ts WHERE name = p_name;
    wait_s := GREATEST(0, (LEAST(p_want::double precision, p_capacity) - (available - granted)) / p_rate);
    RETURN NEXT;
END
$$;
