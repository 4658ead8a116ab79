#!/usr/bin/env bats
# unde-ximilar-sync: every photo of a product into the fake Ximilar
# collection with its metadata, never duplicated, claimed so two runs never
# share a product; or, without a token, descriptors into production's
# pgvector (spec §4).

load lib/common
load lib/pg
load lib/catalog

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	pg_start
	fake_start ximilar ximilar.py
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	fake_reset ximilar
	catalog_db
	export XIMILAR_API_URL=$FAKE_XIMILAR_URL XIMILAR_API_TOKEN=test-token XIMILAR_COLLECTION_ID=coll-1
	export HTTP_BACKOFF_BASE_MS=20
}

# product EXT PHOTOS [STATUS] — a staging product with PHOTOS photo URLs
product() {
	local urls
	urls=$(jq -nc --arg e "$1" --argjson n "$2" '[range(1; $n + 1) | "https://img.test/originals/zara/\($e)/\(.).jpg"]')
	sql "insert into raw_products (source, external_id, brand, name, category, price, image_urls,
		image_status, scraped_at) values ('apify_zara', '$1', 'zara', 'Name $1', 'Tops', 1990.5,
		'$urls', '${3:-collage_ready}', now()) returning id"
}

# jpeg_solid FILE W H "R G B" — a uniform JPEG; jpeg_pattern FILE W H — a gradient
jpeg_solid() {
	vips black "$BATS_TEST_TMPDIR/b.v" "$2" "$3" --bands 3
	vips linear "$BATS_TEST_TMPDIR/b.v" "$1" "1 1 1" "$4" --uchar
}
jpeg_pattern() {
	vips xyz "$BATS_TEST_TMPDIR/x.v" "$2" "$3"
	vips linear "$BATS_TEST_TMPDIR/x.v" "$BATS_TEST_TMPDIR/x2.v" "1 1" "0 0" --uchar
	vips bandjoin_const "$BATS_TEST_TMPDIR/x2.v" "$1" 128
}

collection() {
	curl -fsS "$FAKE_XIMILAR_URL/fake/collection/${1:-coll-1}"
}

@test "--pending puts every photo in the collection with the metadata; at most 10 records a request" {
	product Z1 12 >/dev/null
	product Z2 2 uploaded >/dev/null
	product Z3 2 pending >/dev/null
	run --separate-stderr unde-ximilar-sync --pending
	assert_success
	assert_json_line_count 2
	assert_jq '.ximilar_status == "synced" and .provider == "ximilar"'
	run collection
	assert_jq 'length == 14 and (map(._id) | index("zara-Z1-12")) != null
		and (.[0] | ._url == "https://img.test/originals/zara/Z1/1.jpg" and .sku_id == "Z1"
		and .brand == "zara" and .name == "Name Z1" and .category == "Tops" and .price == "1990.50"
		and has("store") and has("floor"))'
	run fake_requests ximilar /similarity/products/v2/insert
	assert_jq 'length == 3 and all(.json.records | length <= 10)
		and all(.headers.authorization == "Token test-token" and .headers["collection-id"] == "coll-1")'
	run sql "select external_id, ximilar_status, ximilar_records, ximilar_synced_at is not null
		from raw_products order by id"
	assert_output $'Z1|synced|12|t\nZ2|synced|2|t\nZ3|pending|0|f'
}

@test "a product whose photos changed is replaced in the collection, not duplicated" {
	product Z1 3 >/dev/null
	unde-ximilar-sync --pending >/dev/null 2>&1
	sql "update raw_products set ximilar_status = 'pending',
		image_urls = '[\"https://img.test/v2/1.jpg\", \"https://img.test/v2/2.jpg\"]'"
	run --separate-stderr unde-ximilar-sync --pending
	assert_success
	run collection
	assert_jq 'map(._id) == ["zara-Z1-1", "zara-Z1-2"] and map(._url) == ["https://img.test/v2/1.jpg", "https://img.test/v2/2.jpg"]'
	assert_equal "$(sql "select ximilar_records from raw_products")" 2
}

@test "a per-record error marks the product error with its message; --retry-failed takes it again" {
	product Z1 2 >/dev/null
	product Z2 1 >/dev/null
	fake_config ximilar '{"record_errors": {"https://img.test/originals/zara/Z1/2.jpg": {"code": 400, "text": "image could not be downloaded"}}}'
	run --separate-stderr unde-ximilar-sync --pending
	assert_equal "$status" 65
	assert_json_line_count 1
	assert_stderr_error_code ximilar_record_error
	run sql "select external_id, ximilar_status, error_message from raw_products order by id"
	assert_line --index 0 --partial 'Z1|error|ximilar_record_error: Ximilar insert: record 2 (zara-Z1-2): 400 image could not be downloaded'
	assert_line --index 1 'Z2|synced|'
	fake_config ximilar '{"record_errors": {}}'
	run --separate-stderr unde-ximilar-sync --retry-failed
	assert_success
	assert_jq '.external_id == "Z1"'
	# the half-inserted record 1 was deleted before the retry inserted both
	run collection
	assert_jq '[.[] | select(.sku_id == "Z1")] | map(._id) == ["zara-Z1-1", "zara-Z1-2"]'
}

@test "429 with Retry-After and a 500 are retried; a wrong token is an error per product" {
	product Z1 1 >/dev/null
	fake_fail ximilar '{"mode": "429", "retry_after": "1", "path": "/similarity/"}'
	fake_fail ximilar '{"mode": "500", "path": "/similarity/"}'
	run --separate-stderr unde-ximilar-sync --pending
	assert_success
	assert_equal "$(fake_requests ximilar /similarity/ | jq length)" 3
	product Z2 1 >/dev/null
	run --separate-stderr env XIMILAR_API_TOKEN=wrong unde-ximilar-sync --pending
	assert_equal "$status" 69
	assert_stderr_error_code ximilar_http_error
	[[ $(sql "select error_message from raw_products where external_id = 'Z2'") == *"HTTP 401: Invalid token."* ]]
	[[ $stderr != *wrong* ]] || fail "the token reached the log"
}

@test "store and floor come from production's stores for the stores with the product in stock" {
	product Z1 1 >/dev/null
	purl=$(pg_createdb "p_$RANDOM$RANDOM")
	unde-db migrate production --url "$purl" >/dev/null 2>&1
	psql -XAtq "$purl" -c "insert into malls (id, name, timezone, latitude, longitude) values ('m', 'Mega', 'Asia/Almaty', 43.2, 76.9);
		insert into stores (id, mall_id, name, brand, floor, external_store_id) values
		('zara-mega', 'm', 'Zara Mega Alma-Ata', 'zara', 2, 6643)"
	sql "insert into raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)
		values ('zara', 6643, 'Z1', '[\"M\"]', now())"
	run --separate-stderr env PRODUCTION_DB_URL="$purl" unde-ximilar-sync --pending
	assert_success
	assert_jq '.ximilar_metadata.store == "Zara Mega Alma-Ata" and .ximilar_metadata.floor == 2'
	run collection
	assert_jq '.[0].store == "Zara Mega Alma-Ata" and .[0].floor == 2'
}

@test "two runs at once never take the same product" {
	for i in 1 2 3 4 5 6; do product "Z$i" 1 >/dev/null; done
	fake_fail ximilar '{"mode": "slow", "delay_ms": 300, "count": -1, "path": "/similarity/"}'
	unde-ximilar-sync --pending >"$BATS_TEST_TMPDIR/a" 2>/dev/null & a=$!
	unde-ximilar-sync --pending >"$BATS_TEST_TMPDIR/b" 2>/dev/null & b=$!
	wait $a; wait $b
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | jq -s 'map(.external_id) | sort | unique | length')" 6
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | wc -l)" 6
	assert_equal "$(collection | jq length)" 6
}

@test "a record on stdin is synced; one whose photos are not up is refused" {
	id=$(product Z1 1)
	id2=$(product Z2 1 pending)
	run --separate-stderr unde-ximilar-sync <<<"{\"id\": $id2}
{\"id\": $id, \"request_id\": \"r1\"}"
	assert_equal "$status" 65
	assert_stderr_error_code photos_not_uploaded
	assert_jq '.id == '"$id"' and .ximilar_status == "synced" and .request_id == "r1"'
}

@test "without a token: descriptors of every photo into production's pgvector, the same photo nearest" {
	unset XIMILAR_API_TOKEN
	d=$(unde_tmpdir)
	mkdir -p "$d/unde-images/originals/zara/L1" "$d/unde-images/originals/zara/L2"
	jpeg_solid "$d/unde-images/originals/zara/L1/1.jpg" 160 200 "254 0 0"
	jpeg_pattern "$d/unde-images/originals/zara/L1/2.jpg" 160 200
	jpeg_solid "$d/unde-images/originals/zara/L2/1.jpg" 200 160 "0 0 254"
	export S3_ENDPOINT=file://$d S3_BUCKET=unde-images
	sql "insert into raw_products (source, external_id, brand, name, image_urls, image_status, scraped_at) values
		('apify_zara', 'L1', 'zara', 'red', '[\"file://$d/unde-images/originals/zara/L1/1.jpg\", \"file://$d/unde-images/originals/zara/L1/2.jpg\"]', 'uploaded', now()),
		('apify_zara', 'L2', 'zara', 'blue', '[\"file://$d/unde-images/originals/zara/L2/1.jpg\"]', 'uploaded', now())"
	run --separate-stderr unde-ximilar-sync --pending
	assert_equal "$status" 78
	[[ $stderr == *PRODUCTION_DB_URL* ]]
	purl=$(pg_createdb "p_$RANDOM$RANDOM")
	unde-db migrate production --url "$purl" >/dev/null 2>&1
	export PRODUCTION_DB_URL=$purl
	run --separate-stderr unde-ximilar-sync --pending
	assert_success
	assert_jq '.provider == "local"'
	assert_equal "$(fake_requests ximilar | jq length)" 0
	# uniform photos have (nearly) no layout part: length ~1/sqrt(2); a pattern 1
	run psql -XAtq "$purl" -c "select sku, photo_no, vector_dims(descriptor), vector_norm(descriptor) < 0.75,
		round(vector_norm(descriptor)::numeric, 3) >= 0.999, metadata->>'name' from product_descriptors order by 1, 2"
	assert_output $'L1|1|112|t|f|red\nL1|2|112|f|t|red\nL2|1|112|t|f|blue'
	# a red query finds the red photo first; blue is farther than the test pattern
	q=$(psql -XAtq "$purl" -c "select descriptor from product_descriptors where sku = 'L1' and photo_no = 1")
	run psql -XAtq "$purl" -c "select sku || '/' || photo_no from product_descriptors order by descriptor <=> '$q' limit 1"
	assert_output 'L1/1'
	assert_equal "$(sql "select string_agg(ximilar_status, ',') from raw_products")" 'synced,synced'
	# photos changed: the rows are replaced whole
	sql "update raw_products set ximilar_status = 'pending', image_urls = '[\"file://$d/unde-images/originals/zara/L2/1.jpg\"]' where external_id = 'L1'"
	unde-ximilar-sync --pending >/dev/null 2>&1
	assert_equal "$(psql -XAtq "$purl" -c "select count(*) from product_descriptors where sku = 'L1'")" 1
}

@test "metrics: ximilar_sync_errors and ximilar_sync_pending_count" {
	export UNDE_METRICS_DIR=$BATS_TEST_TMPDIR
	product Z1 1 >/dev/null
	product Z2 1 >/dev/null
	fake_config ximilar '{"record_errors": {"zara-Z2-1": {"code": 422, "text": "bad"}}}'
	unde-ximilar-sync --pending --limit 1 >/dev/null 2>&1
	grep -qx 'ximilar_sync_errors 0' "$BATS_TEST_TMPDIR/unde-ximilar-sync.prom"
	grep -qx 'ximilar_sync_pending_count 1' "$BATS_TEST_TMPDIR/unde-ximilar-sync.prom"
	unde-ximilar-sync --pending >/dev/null 2>&1 || true
	grep -qx 'ximilar_sync_errors 1' "$BATS_TEST_TMPDIR/unde-ximilar-sync.prom"
	grep -qx 'ximilar_sync_pending_count 0' "$BATS_TEST_TMPDIR/unde-ximilar-sync.prom"
}

@test "--help, --version, missing collection id" {
	run unde-ximilar-sync --help
	assert_output --partial '--pending'
	run unde-ximilar-sync --version
	assert_output --regexp '^unde-ximilar-sync [0-9]'
	run --separate-stderr env -u XIMILAR_COLLECTION_ID unde-ximilar-sync --pending
	assert_equal "$status" 78
	[[ $stderr == *XIMILAR_COLLECTION_ID* ]]
}
