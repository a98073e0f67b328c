-- Scenario 6: every click that was answered 200.
CREATE TABLE clicks (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT      NOT NULL,
    page       TEXT        NOT NULL,
    clicked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Scenario 3: the analytics log of product updates.
CREATE TABLE product_updates (
    id         BIGSERIAL PRIMARY KEY,
    product_id BIGINT      NOT NULL,
    name       TEXT        NOT NULL,
    stock      INTEGER     NOT NULL,
    logged_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX product_updates_product_idx ON product_updates (product_id);
