#!/usr/bin/env bats
# unde-cleanup staging: what §18 calls old data goes, in short batches;
# synced products and recent rows stay; --dry-run only counts.

load lib/common
load lib/pg
load lib/catalog

setup_file() {
	pg_start
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_db
	sql "insert into raw_products (source, external_id, brand, scraped_at, sync_status, synced_at) values
		('s', 'OLD', 'zara', now() - interval '40 days', 'pending', null),
		('s', 'OLDSYNCED', 'zara', now() - interval '40 days', 'synced', now() - interval '35 days'),
		('s', 'NEW', 'zara', now() - interval '2 days', 'pending', null);
	insert into raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)
		select 'zara', 6643, 'P' || i, '[]', now() - interval '31 days' from generate_series(1, 25) i;
	insert into raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)
		values ('zara', 6643, 'P1', '[\"S\"]', now());
	insert into scraper_logs (scraper_name, status, started_at) values
		('apify_zara', 'success', now() - interval '45 days'), ('apify_zara', 'success', now());
	insert into availability_requests (brand, requested_at) values ('zara', now() - interval '31 days')"
}

@test "old snapshots, logs, spent budget and never-synced products go; the rest stays" {
	run --separate-stderr unde-cleanup staging --older-than 30d --batch 10
	assert_success
	assert_json_line_count 4
	assert_jq -s 'map({(.table): .deleted}) | add == {"raw_availability": 25, "scraper_logs": 1,
		"availability_requests": 1, "raw_products": 1}'
	assert_jq -s '.[0].batches == 3'
	assert_equal "$(sql "select string_agg(external_id, ',' order by external_id) from raw_products")" 'NEW,OLDSYNCED'
	assert_equal "$(sql "select count(*) from raw_availability")" 1
	assert_equal "$(sql "select count(*) from scraper_logs")" 1
}

@test "--dry-run counts and deletes nothing" {
	run --separate-stderr unde-cleanup staging --dry-run
	assert_success
	assert_jq -s 'map({(.table): .would_delete}) | add == {"raw_availability": 25, "scraper_logs": 1,
		"availability_requests": 1, "raw_products": 1}'
	assert_equal "$(sql "select count(*) from raw_availability")" 26
	assert_equal "$(sql "select count(*) from raw_products")" 3
}

@test "--older-than takes hours too; a product claimed by a running job is left alone" {
	sql "update raw_products set claimed_by = 'run', claimed_until = now() + interval '1 hour' where external_id = 'OLD'"
	run --separate-stderr unde-cleanup staging --older-than 72h
	assert_success
	assert_jq 'select(.table == "raw_products") | .deleted == 0'
	run --separate-stderr unde-cleanup staging --older-than 24h
	assert_jq 'select(.table == "raw_products") | .deleted == 1'
	assert_equal "$(sql "select external_id from raw_products where sync_status <> 'synced'")" OLD
}

@test "usage: the database must be named, the age must parse" {
	run unde-cleanup
	assert_equal "$status" 64
	run unde-cleanup production
	assert_equal "$status" 64
	run unde-cleanup staging --older-than 30x
	assert_equal "$status" 64
	run unde-cleanup --help
	assert_output --partial 'Usage: unde-cleanup staging'
	run unde-cleanup --version
	assert_output --regexp '^unde-cleanup [0-9]'
}
