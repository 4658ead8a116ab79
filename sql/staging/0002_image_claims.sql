-- 0002_image_claims.sql — staging: who is working on a product's photos.
--
-- unde-download and unde-collage each take a batch of products from
-- raw_products (image_status 'pending', 'uploaded' or 'error') and work on it
-- for minutes: fetching photos, uploading, gluing collages. Two runs at once
-- (a slow cron run and the next one, or a pipeline and a cron run) must never
-- take the same product. Row locks (FOR UPDATE SKIP LOCKED) would have to be
-- held in one transaction for the whole batch, so killing a run would roll
-- back the products it had already finished. Instead a run claims its rows
-- in one short statement (that one uses SKIP LOCKED) and releases each with
-- the product's final UPDATE:
--
--   claimed_by     the claiming run's id (a UUID); NULL when nobody works on it
--   claimed_until  when the claim lapses, so rows of a killed run come back
--                  by themselves (unde-download/unde-collage --claim-ttl)
--
-- A product's image_status is only ever changed by the run that holds its
-- claim, in the same UPDATE that releases it: a run killed midway leaves
-- every product either finished or exactly as it was.
-- Applied by `unde-db migrate staging` inside one transaction.

ALTER TABLE raw_products
    ADD COLUMN claimed_by VARCHAR(64),
    ADD COLUMN claimed_until TIMESTAMPTZ;

COMMENT ON COLUMN raw_products.claimed_by IS
    'run id of the unde-download/unde-collage run working on this product, or NULL';
COMMENT ON COLUMN raw_products.claimed_until IS
    'when that claim lapses (a killed run''s products come back by themselves)';
