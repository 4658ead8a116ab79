-- sql/roles/staging.sql — the staging database's roles and grants, spec §6.
--
--   psql -v ON_ERROR_STOP=1 -d unde_staging -f sql/roles/staging.sql
--
-- Run as the owner of the tables (whoever ran `unde-db migrate staging`),
-- after every migration: the grants are column lists, so a new column is
-- nobody's until this file says whose. Idempotent: roles are created when
-- missing, every table privilege of these roles is revoked and granted
-- again, so re-running it removes stale grants and changes nothing else.
-- Passwords are not set here: ALTER ROLE … PASSWORD (scram-sha-256) on the
-- host, or \password in psql.
--
-- The grants are what the code's SQL needs, no more:
--   apify       unde-apify: the upsert of src/apify/main.c (INSERT, and the
--               ON CONFLICT SET columns), its RETURNING/CASE reads, and one
--               scraper_logs row per run.
--   downloader  unde-download (src/download/, src/catalog/claim.c):
--               reads products, claims them (claimed_by, claimed_until; FOR
--               UPDATE SKIP LOCKED), writes image_urls, image_status,
--               error_message, error_permanent, updated_at.
--   collage     unde-collage (src/collage/main.c, claim.c): the same claim,
--               writes collage_url, collage_width, collage_height,
--               image_status, error_message, error_permanent, updated_at.
--   ximilar     unde-ximilar-sync (§4, src/ximilar-sync/): the same claim,
--               writes ximilar_status, ximilar_synced_at, ximilar_records,
--               error_message, updated_at.
--   scraper     the scraper server (§1, §17): READ/WRITE all, as §6 says:
--               rows of every table, no DDL.

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['apify', 'downloader', 'ximilar', 'scraper', 'collage'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', r);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', r);
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
    END LOOP;
END $$;

-- (REVOKE ALL on a table revokes its column privileges too.)

-- apify
GRANT SELECT, INSERT ON raw_products TO apify;
GRANT UPDATE (brand, name, description, price, currency, category, colour, sizes, composition,
    original_image_urls, raw_data, scraped_at, image_status, image_urls, collage_url,
    error_message, ximilar_status, sync_status, updated_at)
    ON raw_products TO apify;
GRANT USAGE ON SEQUENCE raw_products_id_seq TO apify;
GRANT INSERT ON scraper_logs TO apify;
GRANT USAGE ON SEQUENCE scraper_logs_id_seq TO apify;

-- downloader
GRANT SELECT ON raw_products TO downloader;
GRANT UPDATE (image_urls, image_status, error_message, error_permanent, updated_at,
    claimed_by, claimed_until)
    ON raw_products TO downloader;

-- collage
GRANT SELECT ON raw_products TO collage;
GRANT UPDATE (collage_url, collage_width, collage_height, image_status, error_message,
    error_permanent, updated_at, claimed_by, claimed_until)
    ON raw_products TO collage;

-- ximilar
GRANT SELECT ON raw_products TO ximilar;
GRANT UPDATE (ximilar_status, ximilar_synced_at, ximilar_records, error_message, updated_at,
    claimed_by, claimed_until)
    ON raw_products TO ximilar;

-- scraper: all rows of all tables
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO scraper;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO scraper;
-- unde-db's bookkeeping is the migration owner's alone
REVOKE ALL ON schema_migrations FROM scraper;
GRANT SELECT ON schema_migrations TO scraper;
