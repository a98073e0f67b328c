-- Scenario 6: a client that retries a click (after a 503, a timeout, a lost
-- connection) sends the same `Idempotency-Key`; a key is stored once, so the
-- retry never counts the click twice. Clicks sent without one are unkeyed.
ALTER TABLE clicks ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX clicks_idempotency_key_idx ON clicks (idempotency_key);
