-- 0001_raw_tables.sql — staging database (unde_staging), spec §6 "Схема базы данных".
--
-- Creates the raw catalogue tables the collectors write and the sync job
-- reads (§17.1–§17.4): raw_products, raw_availability, raw_stores,
-- scraper_logs, and every index §6 lists.
--
-- This is the spec's SQL, column for column. One change, because the spec's
-- text is not valid PostgreSQL:
--   raw_availability: UNIQUE(brand, store_id, product_id, fetched_at::date)
--   — a table constraint cannot contain an expression, and fetched_at::date on
--   a timestamptz is not immutable (it depends on the session's TimeZone), so
--   it cannot be indexed either. Instead a stored generated column
--   fetched_date = (fetched_at AT TIME ZONE 'UTC')::date carries the day, and
--   the constraint is UNIQUE(brand, store_id, product_id, fetched_date). Days
--   are therefore UTC days, the same whatever the client's time zone. An
--   hourly poll upserts with
--     ON CONFLICT (brand, store_id, product_id, fetched_date) DO UPDATE ...
--   and so keeps one row per product, store and day.
-- Applied by `unde-db migrate staging` inside one transaction.

-- Сырые данные товаров
CREATE TABLE raw_products (
    id BIGSERIAL PRIMARY KEY,

    source VARCHAR(50) NOT NULL,
    external_id VARCHAR(100) NOT NULL,
    brand VARCHAR(50) NOT NULL,

    name TEXT,
    description TEXT,
    price DECIMAL(10,2),
    currency VARCHAR(10) DEFAULT 'KZT',
    category TEXT,
    colour VARCHAR(100),
    sizes JSONB,
    composition TEXT,

    original_image_urls JSONB,
    image_urls JSONB,
    collage_url TEXT,

    raw_data JSONB,
    scraped_at TIMESTAMPTZ NOT NULL,

    image_status VARCHAR(20) DEFAULT 'pending',
        -- pending → uploaded → collage_ready | error

    sync_status VARCHAR(20) DEFAULT 'pending',
        -- pending → synced | skipped | error

    ximilar_status VARCHAR(20) DEFAULT 'pending',
        -- pending → synced | error
    ximilar_synced_at TIMESTAMPTZ,

    synced_at TIMESTAMPTZ,
    error_message TEXT,

    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),

    UNIQUE(source, external_id)
);

COMMENT ON COLUMN raw_products.image_status IS
    'pending → uploaded → collage_ready | error';
COMMENT ON COLUMN raw_products.sync_status IS
    'pending → synced | skipped | error';
COMMENT ON COLUMN raw_products.ximilar_status IS
    'pending → synced | error';

-- Наличие в физических магазинах
CREATE TABLE raw_availability (
    id BIGSERIAL PRIMARY KEY,
    brand VARCHAR(50) NOT NULL,
    store_id INTEGER NOT NULL,
    product_id VARCHAR(100) NOT NULL,
    sizes_in_stock JSONB NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    -- Not in the spec: replaces fetched_at::date in the unique key (see top).
    fetched_date DATE GENERATED ALWAYS AS ((fetched_at AT TIME ZONE 'UTC')::date) STORED,
    UNIQUE(brand, store_id, product_id, fetched_date)
);

COMMENT ON COLUMN raw_availability.fetched_date IS
    'UTC day of fetched_at; stands for the spec''s fetched_at::date in the unique key';

-- Физические магазины Казахстана
CREATE TABLE raw_stores (
    id SERIAL PRIMARY KEY,
    brand VARCHAR(50) NOT NULL,
    store_id INTEGER NOT NULL,
    name TEXT,
    address TEXT,
    city VARCHAR(100) DEFAULT 'Almaty',
    country VARCHAR(10) DEFAULT 'KZ',
    mall_name TEXT,
    latitude DECIMAL(10,7),
    longitude DECIMAL(10,7),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE(brand, store_id)
);

-- Логи скраперов
CREATE TABLE scraper_logs (
    id BIGSERIAL PRIMARY KEY,
    scraper_name VARCHAR(100) NOT NULL,
    run_id VARCHAR(100),
    status VARCHAR(20) NOT NULL,
    records_fetched INTEGER DEFAULT 0,
    records_new INTEGER DEFAULT 0,
    records_updated INTEGER DEFAULT 0,
    records_errors INTEGER DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    duration_seconds INTEGER,
    error_message TEXT,
    metadata JSONB,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

-- ИНДЕКСЫ
CREATE INDEX idx_raw_products_brand ON raw_products(brand);
CREATE INDEX idx_raw_products_image_status ON raw_products(image_status);
CREATE INDEX idx_raw_products_sync_status ON raw_products(sync_status);
CREATE INDEX idx_raw_products_ximilar_status ON raw_products(ximilar_status);
CREATE INDEX idx_raw_products_external_id ON raw_products(external_id);
CREATE INDEX idx_raw_products_scraped_at ON raw_products(scraped_at);
CREATE INDEX idx_raw_availability_brand_store ON raw_availability(brand, store_id);
CREATE INDEX idx_raw_availability_product ON raw_availability(product_id);
CREATE INDEX idx_raw_availability_fetched ON raw_availability(fetched_at);
CREATE INDEX idx_scraper_logs_name ON scraper_logs(scraper_name);
CREATE INDEX idx_scraper_logs_started ON scraper_logs(started_at DESC);
