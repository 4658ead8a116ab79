-- 0005_malls_stores_events.sql — production database (unde_main), for the
-- Context Agent, spec §15: malls, stores (of a mall) and events there.
--
-- §15 reads "events, stores" from Production DB (PRODUCTION_DB_URL comment)
-- but gives no SQL, so the columns are derived from what §15 uses:
--   * geo_resolver: GPS / indoor position → mall_id, nearest store
--       → malls.latitude/longitude/radius_m, stores.latitude/longitude;
--   * context_frame.location: mall_id 'dubai-hills-mall', mall_name,
--     near_store 'zara-ground-floor', floor
--       → text slugs as keys, malls.name, stores.floor;
--   * time_context: "Часы + расписание ТЦ" → part_of_day, mall_closes_in_hours
--       → malls.timezone, malls.opening_hours (and stores.opening_hours);
--   * event_scanner / OpportunityMatcher: events nearby ("Zara — скидка 30%",
--     "Reel Cinemas: premiere") crossed with compact_preferences
--     (favorite_brands, interests, allergies)
--       → events.type/title/discount, stores.brand, events.tags;
--     opportunities: {store, type, discount | title, relevance_reason}.
--   * "Production DB + парсинг", cached 1 hour → events.source, url.
-- Coordinates use raw_stores' type (§6): DECIMAL(10,7).
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE malls (
    id VARCHAR(100) PRIMARY KEY,            -- 'dubai-hills-mall'
    name TEXT NOT NULL,                     -- 'Dubai Hills Mall'
    city VARCHAR(100),
    country VARCHAR(10),
    timezone VARCHAR(64) NOT NULL,          -- IANA name: 'Asia/Dubai'
    latitude DECIMAL(10,7) NOT NULL,
    longitude DECIMAL(10,7) NOT NULL,
    radius_m INTEGER NOT NULL DEFAULT 300 CHECK (radius_m > 0),
        -- a GPS fix within radius_m of the centre is "in the mall"
    opening_hours JSONB,
        -- local times per weekday: {"mon": ["10:00", "22:00"], ...,
        --  "fri": ["10:00", "24:00"]}; a missing day = closed
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TABLE stores (
    id VARCHAR(100) PRIMARY KEY,            -- 'zara-ground-floor'
    mall_id VARCHAR(100) REFERENCES malls(id) ON DELETE CASCADE,
        -- NULL for a store outside any mall
    name TEXT NOT NULL,                     -- 'Zara', 'Reel Cinemas'
    brand VARCHAR(50),                      -- matched against favorite_brands
    category VARCHAR(50),                   -- 'fashion' | 'cinema' | 'food' | ...
    floor INTEGER,
    external_store_id INTEGER,              -- the brand's store id (raw_stores.store_id,
                                            -- products.availability key)
    latitude DECIMAL(10,7),
    longitude DECIMAL(10,7),
    opening_hours JSONB,                    -- as malls.opening_hours; NULL = the mall's
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE(brand, external_store_id)
);

CREATE INDEX idx_stores_mall ON stores(mall_id);
CREATE INDEX idx_stores_brand ON stores(brand);

CREATE TABLE events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    mall_id VARCHAR(100) REFERENCES malls(id) ON DELETE CASCADE,
    store_id VARCHAR(100) REFERENCES stores(id) ON DELETE CASCADE,
    type VARCHAR(20) NOT NULL,
        -- sale | premiere | festival | ...
    title TEXT,                             -- 'New Korean thriller'
    discount VARCHAR(20),                   -- '30%' (sales)
    tags TEXT[] NOT NULL DEFAULT '{}',
        -- matched against interests / allergies:
        -- '{korean_thrillers}', '{gluten_free}'
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ,                    -- NULL = open-ended
    source VARCHAR(50),                     -- 'manual' | 'parser' | ...
    url TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    CHECK (ends_at IS NULL OR ends_at >= starts_at)
);

COMMENT ON COLUMN events.type IS 'sale | premiere | festival | ...';

CREATE INDEX idx_events_mall_time ON events(mall_id, starts_at);
CREATE INDEX idx_events_store ON events(store_id);
CREATE INDEX idx_events_ends ON events(ends_at);
CREATE INDEX idx_events_tags ON events USING gin (tags);
