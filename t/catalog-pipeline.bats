#!/usr/bin/env bats
# The whole catalog job of the spec, two weeks running: fake Apify → staging
# → fake CDN → the real S3-compatible server (moto) → collages → fake
# Ximilar → fake Zara stock → production (§17.1–§17.4), then a second
# week with a changed price, one product gone and one new.

load lib/common
load lib/pg
load lib/moto
load lib/catalog

setup_file() {
	catalog_setup_file cdn apify ximilar zara
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_setup e cdn apify ximilar zara
	local url
	url=$(pg_createdb "prod${BATS_TEST_NUMBER}_$RANDOM")
	unde-db migrate production --url "$url" >/dev/null 2>&1
	export PRODUCTION_DB_URL=$url
	export APIFY_API_URL=$FAKE_APIFY_URL APIFY_TOKEN=test-token APIFY_POLL_INTERVAL_MS=5
	export XIMILAR_API_URL=$FAKE_XIMILAR_URL XIMILAR_API_TOKEN=test-token XIMILAR_COLLECTION_ID=kz
	export ZARA_API_URL=$FAKE_ZARA_URL ZARA_USER_AGENT=ZaraApp/15.10.0
	export KZ_BERSHKA_STORES=777 BERSHKA_API_URL=$FAKE_ZARA_URL BERSHKA_USER_AGENT=BershkaApp/1
	export AVAILABILITY_BUDGET_PER_HOUR=5
}

# week ITEMS-JSON STOCK-JSON — one week's job, as cron runs it
week() {
	fake_config apify "{\"datasets\": $1, \"polls\": 0}"
	fake_config zara "{\"stock\": $2}"
	unde-apify --brand zara --brand bershka | unde-download | unde-collage >/dev/null
	unde-ximilar-sync --pending >/dev/null
	unde-availability >/dev/null
	unde-sync
}

# item BRAND ID PRICE — one Apify item with two photos on the fake CDN
item() {
	jq -nc --arg b "$1" --arg id "$2" --argjson p "$3" --arg cdn "$CDN" \
		'{id: $id, name: "\($b) \($id)", brand: $b, price: $p, currency: "KZT", category: ["Women", "Tops"],
		  color: "Red", sizes: ["S", "M", "L"], composition: "100% cotton",
		  images: ["\($cdn)/p/jpeg-300x400/\($b)/\($id)/1.jpg", "\($cdn)/p/jpeg-400x300/\($b)/\($id)/2.jpg"]}'
}

prod() {
	psql -XAtq -v ON_ERROR_STOP=1 "$PRODUCTION_DB_URL" -c "$1"
}

@test "two weeks of the catalog job: production ends exactly as expected" {
	zara1=$(jq -sc . <(item zara Z1 1000) <(item zara Z2 2000) <(item zara Z3 3000))
	bershka=$(jq -sc . <(item bershka B1 500) <(item bershka B2 600))
	run --separate-stderr week "{\"datasaurus~zara\": $zara1, \"datasaurus~bershka\": $bershka}" \
		'{"6643": {"Z1": {"S": 1}, "Z2": {"M": 2}}, "9204": {"Z3": {"S": 0}, "Z1": {"L": 4}},
		  "9073": {}, "16546": {}, "777": {"B1": {"M": 1}, "B2": {"XS": 3}}}'
	assert_success
	assert_json_line_count 4
	q="select sku, price, brand, available, availability, image_urls->>1 like '%/originals/' || brand || '/' || sku || '/2.jpg',
		collage_url like '%/collages/' || brand || '/' || sku || '.jpg' from products order by sku"
	run prod "$q"
	assert_output - <<-'EOF'
	B1|500.00|bershka|t|{"777": ["M"]}|t|t
	B2|600.00|bershka|t|{"777": ["XS"]}|t|t
	Z1|1000.00|zara|t|{"6643": ["S"], "9204": ["L"]}|t|t
	Z2|2000.00|zara|t|{"6643": ["M"]}|t|t
	EOF
	# every photo of the five products in the collection, with its metadata
	run curl -fsS "$FAKE_XIMILAR_URL/fake/collection/kz"
	assert_jq 'length == 10 and (map(._id) | unique | length) == 10
		and (map(select(._id == "zara-Z1-2"))[0] | .price == "1000.00" and .sku_id == "Z1" and .brand == "zara")'
	# the collage of one product really is in the bucket
	moto_aws s3api head-object --bucket "$S3_BUCKET" --key collages/zara/Z1.jpg >/dev/null

	# a week later: Z1 cheaper, Z2 gone from the catalogue and every store, Z4 new
	sql "update scraper_logs set started_at = started_at - interval '7 days';
		update raw_availability set fetched_at = fetched_at - interval '7 days';
		update availability_requests set requested_at = requested_at - interval '7 days'"
	zara2=$(jq -sc . <(item zara Z1 900) <(item zara Z3 3000) <(item zara Z4 4000))
	run --separate-stderr week "{\"datasaurus~zara\": $zara2, \"datasaurus~bershka\": $bershka}" \
		'{"6643": {"Z1": {"S": 1}}, "9204": {"Z4": {"L": 2}, "Z3": {"S": 0}},
		  "9073": {}, "16546": {}, "777": {"B1": {"M": 1}, "B2": {"XS": 3}}}'
	assert_success
	run prod "$q"
	assert_output - <<-'EOF'
	B1|500.00|bershka|t|{"777": ["M"]}|t|t
	B2|600.00|bershka|t|{"777": ["XS"]}|t|t
	Z1|900.00|zara|t|{"6643": ["S"]}|t|t
	Z2|2000.00|zara|f|{}|t|t
	Z4|4000.00|zara|t|{"9204": ["L"]}|t|t
	EOF
	run curl -fsS "$FAKE_XIMILAR_URL/fake/collection/kz"
	assert_jq 'length == 12 and (map(._id) | unique | length) == 12'
	assert_equal "$(sql "select string_agg(external_id || ':' || sync_status, ',' order by external_id) from raw_products")" \
		'B1:synced,B2:synced,Z1:synced,Z2:synced,Z3:pending,Z4:synced'
	# and an hour later, nothing to do: the same production
	before=$(prod "select sku, price, availability, updated_at from products order by sku")
	sql "update availability_requests set requested_at = requested_at - interval '1 hour'"
	run --separate-stderr unde-sync
	assert_success
	assert_output ''
	assert_equal "$(prod "select sku, price, availability, updated_at from products order by sku")" "$before"
}

@test "the sample catalogue runs the whole job on the embedded defaults (file object store, local stock and descriptors)" {
	unset APIFY_API_URL APIFY_TOKEN XIMILAR_API_URL XIMILAR_API_TOKEN XIMILAR_COLLECTION_ID \
		ZARA_API_URL ZARA_USER_AGENT KZ_BERSHKA_STORES BERSHKA_API_URL BERSHKA_USER_AGENT
	d=$(unde_tmpdir)
	export S3_ENDPOINT=file://$d/objects S3_BUCKET=unde-images
	unset S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
	mkdir -p "$d/objects/unde-images"
	run --separate-stderr "$UNDE_TOP_SRCDIR/share/sample/run" "$d/work"
	assert_success
	assert_json_line_count 27
	assert_jq '.sync == "inserted" and .available'
	run prod "select count(*), count(distinct brand), bool_and(collage_url like 'file://%/collages/%'),
		bool_and(jsonb_array_length(image_urls) = 3) from products"
	assert_output '27|2|t|t'
	assert_equal "$(prod "select count(*) from product_descriptors")" 90
	assert_equal "$(prod "select string_agg(sku, ',' order by sku) from products where sku in ('ZS07', 'ZS14', 'BS07')")" ''
	test -s "$d/objects/unde-images/collages/zara/ZS01.jpg"
}
