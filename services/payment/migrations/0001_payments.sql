-- Payments and what the (simulated) external payment API answered.
CREATE TABLE payments (
    id             UUID PRIMARY KEY,
    order_id       BIGINT,
    amount_cents   BIGINT      NOT NULL CHECK (amount_cents > 0),
    currency       TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('pending', 'completed', 'declined')),
    force_decline  BOOLEAN     NOT NULL DEFAULT false,
    transaction_id TEXT,
    decline_reason TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ
);

CREATE INDEX payments_order_idx ON payments (order_id);
