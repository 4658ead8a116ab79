-- 0003_image_error_kind.sql — staging: is a product's image error for good,
-- and the size of its collage.
--
-- unde-download and unde-collage mark a product image_status 'error' with
-- error_message "code: why". Some failures cannot go away by trying again
-- (the CDN answers 404, the file is not an image, the product has no photo
-- URL); retrying those every hour only costs requests. error_permanent says
-- which kind the last failure was; --retry-failed skips permanent ones
-- unless --include-permanent is given. Rows that failed before this column
-- existed count as temporary (they are retried once more, as before).
--
-- collage_width / collage_height: the collage's size, set with collage_url,
-- so a re-run can pass a finished product on with them without fetching
-- the collage again.
-- Applied by `unde-db migrate staging` inside one transaction.

ALTER TABLE raw_products
    ADD COLUMN error_permanent BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN collage_width INTEGER,
    ADD COLUMN collage_height INTEGER;

COMMENT ON COLUMN raw_products.error_permanent IS
    'the last image error cannot be cured by retrying (404, not an image, no photo URL)';
COMMENT ON COLUMN raw_products.collage_width IS 'width in pixels of the collage at collage_url';
COMMENT ON COLUMN raw_products.collage_height IS 'height in pixels of the collage at collage_url';
