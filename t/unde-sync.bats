#!/usr/bin/env bats
# unde-sync: staging → production (spec §17.4): only products with a
# collage and in stock within 2 hours; refreshes of those synced before;
# out of stock everywhere stays, unavailable; idempotent.

load lib/common
load lib/pg
load lib/catalog
load lib/pgbouncer

setup_file() {
	pg_start
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_db
	local url
	url=$(pg_createdb "p${BATS_TEST_NUMBER}_$RANDOM$RANDOM")
	unde-db migrate production --url "$url" >/dev/null 2>&1
	export PRODUCTION_DB_URL=$url
	# four products: ready+in stock, ready+stock too old, no collage, ready+sold out
	sql "insert into raw_products (source, external_id, brand, name, price, category, image_urls,
		collage_url, image_status, scraped_at) values
		('apify_zara', 'Z1', 'zara', 'Shirt', 100, 'Tops', '[\"http://s/o/1.jpg\",\"http://s/o/2.jpg\"]',
		 'http://s/c/Z1.jpg', 'collage_ready', now()),
		('apify_zara', 'Z2', 'zara', 'Dress', 200, 'Dresses', '[\"http://s/o/3.jpg\"]', 'http://s/c/Z2.jpg',
		 'collage_ready', now()),
		('apify_zara', 'Z3', 'zara', 'Coat', 300, 'Coats', '[\"http://s/o/4.jpg\"]', null, 'uploaded', now()),
		('apify_zara', 'Z4', 'zara', 'Hat', 400, 'Hats', '[\"http://s/o/5.jpg\"]', 'http://s/c/Z4.jpg',
		 'collage_ready', now())"
	poll "('zara', 6643, 'Z1', '[\"S\",\"M\"]'), ('zara', 9204, 'Z1', '[\"L\"]'),
		('zara', 6643, 'Z3', '[\"S\"]'), ('zara', 6643, 'Z4', '[]')"
	sql "insert into raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)
		values ('zara', 6643, 'Z2', '[\"M\"]', now() - interval '3 hours')"
}

# poll ROWS — a complete availability poll now: its scraper_logs row and
# raw_availability (brand, store, product, sizes) rows fetched at its start.
poll() {
	sql "with l as (insert into scraper_logs (scraper_name, status, started_at)
		values ('availability_zara', 'success', now()) returning started_at)
		insert into raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)
		select v.b, v.s, v.p, v.z::jsonb, l.started_at from l, (values $1) v(b, s, p, z)
		on conflict (brand, store_id, product_id, fetched_date) do update
		set sizes_in_stock = excluded.sizes_in_stock, fetched_at = excluded.fetched_at"
}

psql_prod() {
	psql -XAtq -v ON_ERROR_STOP=1 "$PRODUCTION_DB_URL" -c "$1"
}

@test "only collage_ready, pending and in stock within 2 hours reach production, with availability per store" {
	run --separate-stderr unde-sync
	assert_success
	assert_json_line_count 1
	assert_jq '.sku == "Z1" and .sync == "inserted" and .available and .availability == {"6643": ["S","M"], "9204": ["L"]}'
	run psql_prod "select sku, name, price, brand, image_url, collage_url, availability, available from products"
	assert_output 'Z1|Shirt|100.00|zara|http://s/o/1.jpg|http://s/c/Z1.jpg|{"6643": ["S", "M"], "9204": ["L"]}|t'
	run sql "select external_id, sync_status, synced_at is not null from raw_products order by id"
	assert_output $'Z1|synced|t\nZ2|pending|f\nZ3|pending|f\nZ4|pending|f'
}

@test "a second run changes nothing" {
	unde-sync >/dev/null 2>&1
	q="select sku, price, availability, available, updated_at, synced_at from products order by sku"
	before=$(psql_prod "$q")
	run --separate-stderr unde-sync
	assert_success
	assert_output ''
	assert_equal "$(psql_prod "$q")" "$before"
}

@test "synced products get their price and availability refreshed; sold out everywhere stays, unavailable" {
	unde-sync >/dev/null 2>&1
	sql "update raw_products set price = 90 where external_id = 'Z1'"
	poll "('zara', 6643, 'Z1', '[\"M\"]')"
	run --separate-stderr unde-sync
	assert_success
	assert_jq '.sku == "Z1" and .sync == "refreshed" and .price == "90.00" and .availability == {"6643": ["M"]}'
	# next poll: Z1 sold out everywhere
	sql "update scraper_logs set started_at = started_at - interval '1 hour';
		update raw_availability set fetched_at = fetched_at - interval '1 hour'"
	poll "('zara', 6643, 'Z1', '[]')"
	run --separate-stderr unde-sync
	assert_success
	assert_jq '.sku == "Z1" and .available == false and .availability == {}'
	assert_equal "$(psql_prod "select count(*), bool_or(available) from products")" '1|f'
}

@test "without a complete poll within 2 hours the availability is kept, the price still refreshed" {
	unde-sync >/dev/null 2>&1
	sql "delete from scraper_logs; delete from raw_availability; update raw_products set price = 80 where external_id = 'Z1'"
	run --separate-stderr unde-sync
	assert_success
	assert_equal "$(psql_prod "select price, available, availability from products")" '80.00|t|{"6643": ["S", "M"], "9204": ["L"]}'
}

@test "a product synced again after new photos keeps one row (UPSERT on source, sku)" {
	unde-sync >/dev/null 2>&1
	sql "update raw_products set sync_status = 'pending', collage_url = 'http://s/c/Z1-v2.jpg' where external_id = 'Z1'"
	run --separate-stderr unde-sync
	assert_success
	assert_jq '.sync == "updated"'
	assert_equal "$(psql_prod "select count(*), max(collage_url) from products")" '1|http://s/c/Z1-v2.jpg'
}

@test "batches are as big as --batch; every product gets there" {
	sql "update raw_products set image_status = 'collage_ready' where external_id = 'Z3'"
	run --separate-stderr unde-sync --batch 1
	assert_success
	assert_json_line_count 2
	assert_equal "$(psql_prod "select string_agg(sku, ',' order by sku) from products")" 'Z1,Z3'
}

@test "sync_job_success is 1 after a run, 0 when production is down (exit 69)" {
	export UNDE_METRICS_DIR=$BATS_TEST_TMPDIR
	run --separate-stderr unde-sync
	assert_success
	grep -qx 'sync_job_success 1' "$BATS_TEST_TMPDIR/unde-sync.prom"
	run --separate-stderr env PRODUCTION_DB_URL=postgresql://postgres@127.0.0.1:1/none unde-sync
	assert_equal "$status" 69
	grep -qx 'sync_job_success 0' "$BATS_TEST_TMPDIR/unde-sync.prom"
}

@test "missing configuration names the variable; --help and --version" {
	run --separate-stderr env -u PRODUCTION_DB_URL unde-sync
	assert_equal "$status" 78
	[[ $stderr == *PRODUCTION_DB_URL* ]]
	run unde-sync --help
	assert_output --partial 'Usage: unde-sync'
	run unde-sync --version
	assert_output --regexp '^unde-sync [0-9]'
	run unde-sync --batch 0
	assert_equal "$status" 64
}

@test "through PgBouncer in transaction pooling mode it works the same" {
	pgb_start
	sdb=${STAGING_DB_URL##*/} pdb=${PRODUCTION_DB_URL##*/}
	run --separate-stderr env STAGING_DB_URL="$PGB_URL_BASE/$sdb" \
		PRODUCTION_DB_URL="$PGB_URL_BASE/$pdb" unde-sync --batch 1
	pgb_stop
	assert_success
	assert_jq '.sku == "Z1" and .sync == "inserted"'
	assert_equal "$(psql_prod "select count(*) from products")" 1
}
