-- 0011_product_descriptors.sql — production: the local visual-search
-- collection (pgvector).
--
-- Without XIMILAR_API_TOKEN, unde-ximilar-sync(1) computes for each photo
-- of a product the image descriptor of lib/descriptor.h (112 numbers:
-- colour histogram + 4x4 layout, unit length) and stores it here, with the
-- metadata Ximilar's collection would hold. The recognition service
-- computes the same descriptor of a street-photo crop and searches with
--   ORDER BY descriptor <=> $1::vector LIMIT k
-- (cosine distance, HNSW index). One row per photo; a product's rows are
-- replaced whole when its photos change.
-- CREATE EXTENSION needs a superuser (see sql/shard/0001).
-- Applied by `unde-db migrate production` inside one transaction.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE product_descriptors (
    source VARCHAR(50) NOT NULL,
    sku VARCHAR(100) NOT NULL,
    photo_no INTEGER NOT NULL CHECK (photo_no >= 1),
    brand VARCHAR(50) NOT NULL,
    image_url TEXT NOT NULL,
    descriptor vector(112) NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
        -- sku_id, brand, name, category, price, store, floor (as in Ximilar)
    computed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, sku, photo_no)
);

COMMENT ON COLUMN product_descriptors.descriptor IS
    'lib/descriptor.h v1: 64-bin RGB histogram (centre-weighted) + 4x4 grid of mean colour, unit length';

CREATE INDEX idx_product_descriptors_brand ON product_descriptors(brand);
CREATE INDEX idx_product_descriptors_hnsw ON product_descriptors
    USING hnsw (descriptor vector_cosine_ops);
