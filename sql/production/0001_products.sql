-- 0001_products.sql — production database (unde_main): the catalogue the app,
-- recognition (attribute fallback, §8) and the LLM orchestrator (§13,
-- "контекст каталога") read.
--
-- The spec gives no CREATE TABLE for products. Its columns are derived from:
--   * the architecture overview: "products — sku, name, price, brand,
--     image_url (→ /originals/), collage_url (→ /collages/), availability (JSONB)";
--   * §17.4 sync_to_production: SELECT p.*, a.sizes_in_stock FROM raw_products p
--     JOIN raw_availability a ON p.external_id = a.product_id ... → UPSERT products,
--     so every descriptive column of staging's raw_products (§6) is carried
--     over with the same type, external_id becoming sku;
--   * §8 recognition: attribute fallback is "SQL по метаданным" (category,
--     colour), and Ximilar matches come back as a SKU id + brand.
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE products (
    id BIGSERIAL PRIMARY KEY,

    -- Identity, as in staging: UNIQUE(source, external_id) there,
    -- UNIQUE(source, sku) here, so the sync job upserts on the same key.
    source VARCHAR(50) NOT NULL,            -- 'apify_zara', ...
    sku VARCHAR(100) NOT NULL,              -- raw_products.external_id
    brand VARCHAR(50) NOT NULL,

    name TEXT,
    description TEXT,
    price DECIMAL(10,2),
    currency VARCHAR(10) DEFAULT 'KZT',
    category TEXT,
    colour VARCHAR(100),
    sizes JSONB,
    composition TEXT,

    image_url TEXT,                         -- first photo, …/originals/{brand}/{sku}/1.jpg
    image_urls JSONB,                       -- all photos under /originals/
    collage_url TEXT,                       -- …/collages/{brand}/{sku}.jpg

    -- Stock in physical stores, from raw_availability.sizes_in_stock of the
    -- last poll, keyed by the brand's store id:
    --   {"6643": ["S","M"], "9204": ["L"]}
    availability JSONB NOT NULL DEFAULT '{}'::jsonb,
    availability_updated_at TIMESTAMPTZ,

    staging_id BIGINT,                      -- raw_products.id (other database: no FK)
    synced_at TIMESTAMPTZ DEFAULT NOW(),    -- last UPSERT by the sync job

    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),

    UNIQUE(source, sku)
);

COMMENT ON COLUMN products.sku IS 'raw_products.external_id in staging';
COMMENT ON COLUMN products.availability IS
    'store id (text) → sizes in stock, from raw_availability.sizes_in_stock';

CREATE INDEX idx_products_brand_sku ON products(brand, sku);
CREATE INDEX idx_products_sku ON products(sku);
CREATE INDEX idx_products_category ON products(category);
CREATE INDEX idx_products_updated ON products(updated_at DESC);
CREATE INDEX idx_products_availability ON products USING gin (availability);
