-- Cached values. UNLOGGED: a cache may lose its content in a crash, and writes skip the WAL.
CREATE UNLOGGED TABLE entries (
    key        TEXT PRIMARY KEY,
    value      JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every invalidation the cache carried out, so its effect can be checked.
CREATE TABLE invalidations (
    id             BIGSERIAL PRIMARY KEY,
    product_id     BIGINT      NOT NULL,
    key            TEXT        NOT NULL,
    entry_existed  BOOLEAN     NOT NULL,
    invalidated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX invalidations_product_idx ON invalidations (product_id);

-- Products 1-3 are cached on a fresh start, so an update visibly drops them.
INSERT INTO entries (key, value) VALUES
    ('product:1', '{"id": 1, "name": "Laptop"}'),
    ('product:2', '{"id": 2, "name": "Wireless Mouse"}'),
    ('product:3', '{"id": 3, "name": "Mechanical Keyboard"}');
