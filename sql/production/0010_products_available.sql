-- 0010_products_available.sql — production: a product out of stock stays.
--
-- Spec §17.4: only products with a collage and in stock in KZ are synced.
-- unde-sync(1) refreshes the availability and price of products already
-- synced; one that is no longer in stock in any store is kept (the app,
-- recognition and the dialogue still resolve its SKU) with available =
-- false and an empty availability, never deleted.
-- Applied by `unde-db migrate production` inside one transaction.

ALTER TABLE products
    ADD COLUMN available BOOLEAN NOT NULL DEFAULT true;

COMMENT ON COLUMN products.available IS
    'in stock in at least one store at the last availability refresh';

CREATE INDEX idx_products_available ON products(available);
