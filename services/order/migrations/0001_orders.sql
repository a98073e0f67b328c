CREATE TABLE orders (
    id             BIGSERIAL PRIMARY KEY,
    product_id     BIGINT      NOT NULL,
    quantity       INTEGER     NOT NULL CHECK (quantity > 0),
    amount_cents   BIGINT      NOT NULL CHECK (amount_cents > 0),
    approve_payment BOOLEAN    NOT NULL DEFAULT false,
    status         TEXT        NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
    failure_reason TEXT,
    payment_id     UUID,
    -- An inventory call that must still be made ('release' or 'commit'),
    -- retried in the background until inventory takes it.
    followup       TEXT CHECK (followup IN ('release', 'commit')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_followup_idx ON orders (id) WHERE followup IS NOT NULL;

-- Every step of every saga, with its time.
CREATE TABLE saga_steps (
    id       BIGSERIAL PRIMARY KEY,
    order_id BIGINT      NOT NULL REFERENCES orders (id),
    step     TEXT        NOT NULL,
    outcome  TEXT        NOT NULL,
    detail   TEXT,
    at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX saga_steps_order_idx ON saga_steps (order_id, id);
