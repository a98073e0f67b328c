CREATE TABLE products (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT        NOT NULL,
    price_cents BIGINT      NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    stock       INTEGER     NOT NULL CHECK (stock >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Products 1, 2 and 3 exist on a fresh start (the contract's curl lines use them).
INSERT INTO products (id, name, price_cents, stock) VALUES
    (1, 'Laptop', 99999, 50),
    (2, 'Wireless Mouse', 2499, 200),
    (3, 'Mechanical Keyboard', 7999, 120);
SELECT setval(pg_get_serial_sequence('products', 'id'), 3);
