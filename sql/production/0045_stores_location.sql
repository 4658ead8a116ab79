-- 0045_stores_location.sql — production: where a store is, as staging's
-- raw_stores says (§6: city DEFAULT 'Almaty', country DEFAULT 'KZ').
--
-- Recognition's attribute fallback (§8: "in stock in KZ stores first")
-- counts a product's stock only in the stores of RECOGNITION_STOCK_COUNTRY
-- (and RECOGNITION_STOCK_CITY when set). products.availability is keyed by
-- the brand's store id (stores.external_store_id); a store's place is its
-- own city/country, or else its mall's (malls.city, malls.country). NULL
-- here means "the mall's": existing rows keep their meaning.
-- Applied by `unde-db migrate production` inside one transaction.

ALTER TABLE stores
    ADD COLUMN city VARCHAR(100),
    ADD COLUMN country VARCHAR(10);

COMMENT ON COLUMN stores.city IS 'NULL: the mall''s (malls.city)';
COMMENT ON COLUMN stores.country IS 'ISO code as raw_stores.country; NULL: the mall''s (malls.country)';
