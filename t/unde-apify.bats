#!/usr/bin/env bats
# unde-apify: Apify items (from the Apify API, or a saved file) into staging
# raw_products, one product line each on stdout, one scraper_logs row per
# brand run (spec §2, §17.1).

load lib/common
load lib/pg
load lib/catalog

setup_file() {
	pg_start
	fake_start apify apify.py
}

teardown_file() {
	fake_stop_all
	pg_stop
	unde_teardown_file
}

setup() {
	fake_reset apify
	catalog_db
	export APIFY_API_URL=$FAKE_APIFY_URL APIFY_TOKEN=test-token APIFY_POLL_INTERVAL_MS=5
	export HTTP_BACKOFF_BASE_MS=20
}

item() { # item ID [EXTRA-JQ]
	jq -nc --arg id "$1" "{id: \$id, name: \"Dress \(\$id)\", brand: \"Zara\", price: \"12 990 ₸\",
		images: [\"http://cdn.test/p/\(\$id)/1.jpg\", \"http://cdn.test/p/\(\$id)/2.jpg\"]} ${2:+| $2}"
}

# --- the embedded default: --from FILE ------------------------------------

@test "--from FILE upserts each item as a pending product and prints it with its staging id" {
	d=$(unde_tmpdir)
	{ item 1001; item 1002 '.color = "Black" | .sizes = ["S","M"] | .category = ["Women","Dresses"]'; } >"$d/items.jsonl"
	run --separate-stderr unde-apify --from "$d/items.jsonl"
	assert_success
	assert_json_line_count 2
	assert_jq -s '.[0].source == "apify_zara" and .[0].external_id == "1001" and (.[0].id | type) == "number"
		and .[0].price == 12990 and .[0].image_status == "pending" and .[0].provider == "local"
		and (.[0].original_image_urls | length) == 2 and .[0].change == "new"'
	assert_jq -s '.[1].colour == "Black" and .[1].category == "Women > Dresses" and .[1].sizes == ["S","M"]'
	id=$(jq -s '.[0].id' <<<"$output")
	run sql "select source, external_id, brand, name, price, currency, image_status,
		jsonb_array_length(original_image_urls), raw_data->>'brand' from raw_products where id = $id"
	assert_output 'apify_zara|1001|zara|Dress 1001|12990.00|KZT|pending|2|Zara'
}

@test "--from - reads items from stdin" {
	run --separate-stderr unde-apify --from - < <(item 7)
	assert_success
	assert_jq '.external_id == "7"'
	[ "$(sql 'select count(*) from raw_products')" = 1 ]
}

@test "--brand names the brand of items that carry none" {
	run --separate-stderr unde-apify --from - --brand "Pull&Bear" < <(item 5 'del(.brand)')
	assert_success
	assert_jq '.brand == "pullandbear" and .source == "apify_pullandbear"'
}

@test "items without id, name or brand are reported per the error contract and not inserted" {
	run --separate-stderr unde-apify --from - < <(item 1; item 2 'del(.id)'; item 3 'del(.name)';
		item 4 'del(.brand)'; item 5)
	assert_failure 65
	assert_json_line_count 2
	assert_equal "$(jq -c .external_id <<<"$output" | paste -sd,)" '"1","5"'
	assert_stderr_error_code missing_field
	# the failed record is the input item, whole, so it can be re-run
	echo "$stderr" | jq -se '[.[] | select(.level == "error" and .record != null)] | length == 3
		and (map(.record.price) | all(. == "12 990 ₸"))' >/dev/null
	[ "$(sql 'select count(*) from raw_products')" = 2 ]
}

@test "unusable fields are refused whole: nothing of the item is stored" {
	run --separate-stderr unde-apify --from - < <(item 1 '.price = "call us"'; item 2 '.images = 42';
		item 3 '.images = ["/relative.jpg", "data:image/png;base64,xx"]'; item 4 '.id = "a/../b"';
		item 5 '.price = -3'; item 6 '.color = ("x" * 101)'; item 7 '.sizes = {"S": 1}')
	assert_failure 65
	assert_output ''
	assert_stderr_error_code invalid_field
	assert_stderr_error_code no_images
	[ "$(sql 'select count(*) from raw_products')" = 0 ]
}

@test "malformed lines are reported with their line number and the stream goes on" {
	run --separate-stderr unde-apify --from - < <(item 1; echo 'not json'; item 3)
	assert_failure 65
	assert_json_line_count 2
	[[ $stderr == *'line 2'* ]]
}

@test "prices come in many spellings and are stored as DECIMAL(10,2)" {
	run --separate-stderr unde-apify --from - < <(item 1 '.price = 19.9'; item 2 '.price = "1.299,50 €"';
		item 3 '.price = "1,299.50"'; item 4 '.price = {"value": 5000, "currency": "kzt"} | del(.currency)';
		item 5 'del(.price)')
	assert_success
	run sql "select external_id || '=' || coalesce(price::text, 'null') || ' ' || currency
		from raw_products order by external_id"
	assert_output $'1=19.90 KZT\n2=1299.50 EUR\n3=1299.50 KZT\n4=5000.00 KZT\n5=null KZT'
}

@test "a currency in the price text is taken; when none can be known that is said, not guessed silently" {
	run --separate-stderr unde-apify --from - < <(item 1 '.price = "1.299,50 EUR"'
		item 2 '.price = "eur 12,50" | .currency = "KZT"'; item 3 '.price = "19 990 тг"'
		item 4 '.price = "$12.99"'; item 5 '.price = 12990'; item 6 '.price = "12 990"'
		item 7 '.price = 100 | .currency = "usd"')
	assert_success
	products=$output log=$stderr
	run sql "select external_id || '=' || price::text || ' ' || currency from raw_products order by external_id"
	assert_output $'1=1299.50 EUR\n2=12.50 EUR\n3=19990.00 KZT\n4=12.99 USD\n5=12990.00 KZT\n6=12990.00 KZT\n7=100.00 USD'
	# 5 and 6 name no currency: the default stands in, and the line and the log say so
	[ "$(echo "$products" | jq -sc 'map(select(.currency_assumed) | .external_id)')" = '["5","6"]' ]
	[ "$(echo "$log" | jq -sc 'map(select(.level == "warn" and (.msg | test("no currency"))) | .external_id)')" = '["5","6"]' ]
}

@test "re-importing the same items changes nothing: same rows, statuses kept, updated_at unchanged" {
	d=$(unde_tmpdir)
	{ item 1; item 2; } >"$d/items.jsonl"
	unde-apify --from "$d/items.jsonl" >/dev/null 2>&1
	sql "update raw_products set image_status = 'collage_ready', image_urls = '[\"u\"]',
		collage_url = 'c', ximilar_status = 'synced', sync_status = 'synced'"
	before=$(sql "select id, image_status, image_urls, collage_url, ximilar_status, sync_status, updated_at
		from raw_products order by id")
	run --separate-stderr unde-apify --from "$d/items.jsonl"
	assert_success
	assert_jq '.change == "unchanged" and .image_status == "collage_ready"'
	after=$(sql "select id, image_status, image_urls, collage_url, ximilar_status, sync_status, updated_at
		from raw_products order by id")
	assert_equal "$after" "$before"
}

@test "new photos send a product back to pending; a new price keeps where its photos got to" {
	unde-apify --from - < <(item 1; item 2) >/dev/null 2>&1
	sql "update raw_products set image_status = 'collage_ready', image_urls = '[\"u\"]',
		collage_url = 'c', ximilar_status = 'synced', sync_status = 'synced'"
	run --separate-stderr unde-apify --from - < <(item 1 '.images = ["http://cdn.test/new.jpg"]';
		item 2 '.price = 1')
	assert_success
	assert_jq -s '.[0].change == "updated" and .[0].image_status == "pending"
		and .[1].change == "updated" and .[1].image_status == "collage_ready"'
	run sql "select external_id, image_status, coalesce(image_urls::text, '-'), coalesce(collage_url, '-'),
		ximilar_status, sync_status from raw_products order by external_id"
	assert_output $'1|pending|-|-|pending|pending\n2|collage_ready|["u"]|c|synced|pending'
}

@test "an import writes one scraper_logs row per brand with new, updated and refused counts" {
	unde-apify --from - < <(item 1) >/dev/null 2>&1
	run --separate-stderr unde-apify --from - < <(item 1 '.price = 5'; item 2; item 3 'del(.name)';
		item 9 '.brand = "Oysho"')
	assert_failure 65
	run sql "select scraper_name, status, records_fetched, records_new, records_updated, records_errors,
		run_id is null, metadata->>'provider' from scraper_logs order by id offset 1"
	assert_output $'apify_zara|partial|3|1|1|1|t|local\napify_oysho|success|1|1|0|0|t|local'
}

# --- against the Apify API (the fake) ---------------------------------------

@test "runs the actor per brand, waits for the run to finish and pages through its dataset" {
	fake_config apify '{"generate": {"count": 25, "cdn": "http://cdn.test"}, "polls": 2}'
	run --separate-stderr env APIFY_PAGE_SIZE=10 unde-apify --brand zara
	assert_success
	assert_json_line_count 25
	assert_jq '.source == "apify_zara" and .provider == "apify" and (.id | type) == "number"'
	[ "$(sql "select count(*) from raw_products where source = 'apify_zara' and image_status = 'pending'")" = 25 ]
	# the spec's actor and input, with the token as a bearer header
	run fake_requests apify /v2/acts/
	assert_jq '.[0].path == "/v2/acts/datasaurus~zara/runs" and .[0].headers.authorization == "Bearer test-token"
		and .[0].json.startUrls == ["https://www.zara.com/kz/en/"] and .[0].json.maxItems == 20000'
	# polled until SUCCEEDED: 2 × RUNNING, then done
	run fake_requests apify /v2/actor-runs/
	assert_jq 'length == 3'
	# paged: offsets 0, 10, 20; the short third page ends it
	run fake_requests apify /v2/datasets/
	assert_jq '[.[].args.offset] == ["0", "10", "20"] and all(.args.limit == "10")'
}

@test "items are stored while later pages are still being fetched" {
	fake_config apify '{"generate": {"count": 50, "cdn": "http://cdn.test"}, "polls": 0}'
	# every dataset page takes 300 ms: all five would take 1.5 s
	fake_fail apify '{"mode": "slow", "delay_ms": 300, "path": "/v2/datasets/", "count": -1}'
	d=$(unde_tmpdir)
	APIFY_PAGE_SIZE=10 unde-apify --brand zara 2>/dev/null | {
		read -r first
		fake_requests apify /v2/datasets/ >"$d/seen"
		cat >/dev/null
	}
	pages_when_first_printed=$(jq length "$d/seen")
	[ "$pages_when_first_printed" -lt 5 ] || fail "all $pages_when_first_printed pages were read before the first product"
	[ "$(sql 'select count(*) from raw_products')" = 50 ]
}

@test "--max-items caps what is read from the dataset and is passed to the actor" {
	fake_config apify '{"generate": {"count": 30, "cdn": "http://cdn.test"}, "polls": 0}'
	run --separate-stderr env APIFY_PAGE_SIZE=10 unde-apify --brand bershka --max-items 12
	assert_success
	assert_json_line_count 12
	run fake_requests apify /v2/datasets/
	assert_jq '[.[].args.limit] == ["10", "2"]'
	run fake_requests apify /v2/acts/
	assert_jq '.[0].json.maxItems == 12'
}

@test "each brand run gets its scraper_logs row with the Apify run id and counts" {
	fake_config apify '{"generate": {"count": 4, "cdn": "http://cdn.test"}, "polls": 0}'
	run --separate-stderr unde-apify --brand zara --brand oysho
	assert_success
	assert_json_line_count 8
	run sql "select scraper_name, status, records_fetched, records_new, records_errors,
		run_id like 'run%', duration_seconds >= 0, metadata->>'actor' from scraper_logs order by id"
	assert_output $'apify_zara|success|4|4|0|t|t|datasaurus/zara\napify_oysho|success|4|4|0|t|t|datasaurus/oysho'
}

@test "the actor id per brand and the start URL are configurable" {
	fake_config apify '{"generate": {"count": 1, "cdn": "http://cdn.test"}, "polls": 0}'
	run --separate-stderr env APIFY_ACTOR_ZARA=someone/zara-kz APIFY_START_URL='https://{brand}.example/' \
		unde-apify --brand zara
	assert_success
	run fake_requests apify /v2/acts/
	assert_jq '.[0].path == "/v2/acts/someone~zara-kz/runs" and .[0].json.startUrls == ["https://zara.example/"]'
}

@test "a run that ends FAILED is logged as failed and exits 69" {
	fake_config apify '{"generate": {"count": 2, "cdn": "http://cdn.test"}, "polls": 0,
		"unknown_actors": [], "final_status": "FAILED"}'
	run --separate-stderr unde-apify --brand zara
	assert_failure 69
	assert_output ''
	run sql "select scraper_name, status, records_fetched, error_message like '%FAILED%' from scraper_logs"
	assert_output 'apify_zara|failed|0|t'
}

@test "an unknown actor is a configuration error for that brand; the others still run" {
	fake_config apify '{"generate": {"count": 2, "cdn": "http://cdn.test"}, "polls": 0,
		"unknown_actors": ["datasaurus~zara"]}'
	run --separate-stderr unde-apify --brand zara --brand oysho
	assert_failure 78
	assert_json_line_count 2
	assert_jq '.brand == "oysho"'
	run sql "select scraper_name || ':' || status from scraper_logs order by id"
	assert_output $'apify_zara:failed\napify_oysho:success'
}

@test "a refused token is a configuration error (78) and the token is never printed" {
	run --separate-stderr env APIFY_TOKEN=wrong-secret-token unde-apify --brand zara --brand oysho
	assert_failure 78
	[[ $stderr == *user-or-token-not-found* ]]
	[[ $stderr != *wrong-secret-token* ]]
	# one refusal is enough: the second brand is not even tried
	run fake_requests apify /v2/acts/
	assert_jq 'length == 1'
}

@test "a 429 from Apify is waited out (Retry-After) and the import completes" {
	fake_config apify '{"generate": {"count": 3, "cdn": "http://cdn.test"}, "polls": 0}'
	fake_fail apify '{"mode": "429", "retry_after": "1", "path": "/v2/datasets/"}'
	run --separate-stderr unde-apify --brand zara
	assert_success
	assert_json_line_count 3
	run fake_requests apify /v2/datasets/
	assert_jq 'length == 2 and .[0].status == 429'
}

@test "Apify unreachable: exit 69 and a failed scraper_logs row" {
	run --separate-stderr env APIFY_API_URL=http://127.0.0.1:9 HTTP_MAX_ATTEMPTS=1 unde-apify --brand zara
	assert_failure 69
	[ "$(sql "select status from scraper_logs")" = failed ]
}

@test "each brand run writes its §19 metrics: duration and errors" {
	d=$(unde_tmpdir)
	fake_config apify '{"generate": {"count": 3, "cdn": "http://cdn.test"}, "polls": 0}'
	UNDE_METRICS_DIR=$d unde-apify --brand zara >/dev/null 2>&1
	prom=$d/unde-apify-zara.prom
	grep -q '^apify_scraper_duration{brand="zara"} ' "$prom"
	grep -qx 'apify_scraper_errors{brand="zara"} 0' "$prom"
	grep -qx 'apify_scraper_items{brand="zara"} 3' "$prom"
	grep -qx 'apify_scraper_success{brand="zara"} 1' "$prom"
	UNDE_METRICS_DIR=$d unde-apify --from - < <(item 1; item 2 'del(.name)') >/dev/null 2>&1 || true
	grep -qx 'apify_scraper_errors{brand="zara"} 1' "$prom"
	grep -qx 'apify_scraper_error_ratio{brand="zara"} 0.5' "$prom"
}

# --- configuration ----------------------------------------------------------

@test "without APIFY_TOKEN and without --from it is a configuration error naming APIFY_TOKEN" {
	run --separate-stderr env -u APIFY_TOKEN unde-apify --brand zara
	assert_failure 78
	[[ $stderr == *APIFY_TOKEN* ]]
	[[ $stderr == *--from* ]]
}

@test "without STAGING_DB_URL it is a configuration error naming it" {
	run --separate-stderr env -u STAGING_DB_URL unde-apify --from - </dev/null
	assert_failure 78
	[[ $stderr == *STAGING_DB_URL* ]]
}

@test "an unreachable database is exit 69, and its password is not printed" {
	run --separate-stderr env STAGING_DB_URL=postgresql://u:hunter2@127.0.0.1:9/x unde-apify --from - < <(item 1)
	assert_failure 69
	[[ $stderr != *hunter2* ]]
}

@test "a --from file that cannot be opened is exit 66; bad options are usage errors" {
	run --separate-stderr unde-apify --from /nonexistent/items.jsonl
	assert_failure 66
	run --separate-stderr unde-apify --max-items 0 --from -
	assert_failure 64
	run --separate-stderr unde-apify --from - extra-arg </dev/null
	assert_failure 64
}

@test "--help and --version" {
	run unde-apify --help
	assert_success
	assert_output --partial '--from FILE'
	assert_output --partial '--max-items'
	run unde-apify --version
	assert_output --regexp '^unde-apify [0-9]'
}
