-- The search index: one document per product, searchable by the words of its name.
CREATE TABLE documents (
    product_id BIGINT PRIMARY KEY,
    name       TEXT        NOT NULL,
    words      TSVECTOR    GENERATED ALWAYS AS (to_tsvector('simple', name)) STORED,
    indexed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX documents_words_idx ON documents USING GIN (words);

-- The catalogue's products 1-3 as they are on a fresh start.
INSERT INTO documents (product_id, name) VALUES
    (1, 'Laptop'), (2, 'Wireless Mouse'), (3, 'Mechanical Keyboard');
