-- Reservable stock per product. `available` can be reserved; `reserved` is
-- held for orders whose saga has not finished. Neither can go below zero.
CREATE TABLE stock (
    product_id BIGINT PRIMARY KEY,
    available  INTEGER     NOT NULL CHECK (available >= 0),
    reserved   INTEGER     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- At most one reservation per order. A release that finds no reservation
-- leaves a 'released' tombstone (quantity 0), so a reservation arriving late
-- for that order (its request had timed out) is refused instead of leaking.
CREATE TABLE reservations (
    order_id   BIGINT PRIMARY KEY,
    product_id BIGINT REFERENCES stock (product_id),
    quantity   INTEGER     NOT NULL CHECK (quantity >= 0),
    status     TEXT        NOT NULL CHECK (status IN ('reserved', 'released', 'committed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX reservations_open_idx ON reservations (product_id) WHERE status = 'reserved';

-- Products 1-3 are stocked on a fresh start.
INSERT INTO stock (product_id, available) VALUES (1, 100), (2, 500), (3, 250);
