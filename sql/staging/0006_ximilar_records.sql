-- 0006_ximilar_records.sql — staging: how many photo records of a product
-- the Ximilar collection holds.
--
-- unde-ximilar-sync(1) inserts one collection record per photo, with the
-- ids {brand}-{external_id}-{n}. When a product's photos change (unde-apify
-- sets ximilar_status back to 'pending'), the next sync deletes records
-- 1…ximilar_records before inserting the new ones, so the collection holds
-- exactly the current photos: updated, never duplicated, none left over.
-- Applied by `unde-db migrate staging` inside one transaction.

ALTER TABLE raw_products
    ADD COLUMN ximilar_records INTEGER NOT NULL DEFAULT 0;

COMMENT ON COLUMN raw_products.ximilar_records IS
    'photo records {brand}-{external_id}-1..N the Ximilar collection holds for this product';
