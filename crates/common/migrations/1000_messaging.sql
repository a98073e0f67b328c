-- Async mode's messaging tables, added to every service's own schema.

-- Transactional outbox: an event is written in the same transaction as the
-- state change that causes it; the relay publishes it with a confirm later.
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    message_id     UUID NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    payload        JSONB NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    accepted_at    TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at   TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Inbox: the message ids whose effect this service has committed, written in
-- the effect's transaction, so a message delivered twice has one effect.
CREATE TABLE inbox (
    message_id UUID PRIMARY KEY,
    queue      TEXT NOT NULL,
    handled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
