#!/usr/bin/env bats
# unde-availability: in-store stock of the KZ stores into raw_availability,
# from the fake Inditex stock API or a local stock file, within the API's
# hourly budget kept across runs (spec §1, §17.2).

load lib/common
load lib/pg
load lib/catalog

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	pg_start
	fake_start zara zara.py
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	fake_reset zara
	catalog_db
	export ZARA_API_URL=$FAKE_ZARA_URL ZARA_USER_AGENT='ZaraApp/15.10.0 (test)' HTTP_BACKOFF_BASE_MS=20
	fake_config zara '{"stock": {"6643": {"ZAR1": {"S": 2, "M": 0}, "ZAR2": {"L": 1}},
		"9204": {"ZAR1": {"M": 3}}, "9073": {}, "16546": {"ZAR2": {"S": 0}}}}'
}

@test "one request per KZ store with the app's User-Agent; sizes in stock per product and store" {
	run --separate-stderr unde-availability
	assert_success
	assert_json_line_count 4
	assert_jq -s 'map(.store_id) == [6643, 9204, 9073, 16546] and all(.provider == "inditex")'
	run fake_requests zara
	assert_jq 'length == 4 and all(.headers["user-agent"] == "ZaraApp/15.10.0 (test)")
		and (map(.path) | index("/itxrest/1/physicalstore/16546/product")) != null'
	run sql "select store_id, product_id, sizes_in_stock from raw_availability order by store_id, product_id"
	assert_output $'6643|ZAR1|["S"]\n6643|ZAR2|["L"]\n9204|ZAR1|["M"]\n16546|ZAR2|[]'
	run sql "select scraper_name, status, records_fetched from scraper_logs"
	assert_output 'availability_zara|success|4'
}

@test "a second poll the same day updates the day's row instead of adding one" {
	export AVAILABILITY_BUDGET_PER_HOUR=8
	unde-availability >/dev/null 2>&1
	fake_config zara '{"stock": {"6643": {"ZAR1": {"S": 0, "M": 5}}}}'
	run --separate-stderr unde-availability
	assert_success
	run sql "select count(*), max(sizes_in_stock::text) from raw_availability where store_id = 6643 and product_id = 'ZAR1'"
	assert_output '1|["M"]'
}

@test "the hourly budget holds across runs: a run that would exceed it asks nothing and says when to resume" {
	export AVAILABILITY_BUDGET_PER_HOUR=6 UNDE_METRICS_DIR=$BATS_TEST_TMPDIR
	run --separate-stderr unde-availability
	assert_success
	grep -qx 'availability_budget_left{brand="zara"} 2' "$BATS_TEST_TMPDIR/unde-availability.prom"
	run --separate-stderr unde-availability
	assert_equal "$status" 75
	assert_equal "$(fake_requests zara | jq length)" 4
	[[ $stderr == *"resume at 20"*Z* ]] || fail "no resume time: $stderr"
	grep -qx 'availability_poll_success{brand="zara"} 0' "$BATS_TEST_TMPDIR/unde-availability.prom"
	run sql "select status from scraper_logs order by id"
	assert_output $'success\nbudget_exhausted'
	# requests older than an hour no longer count
	sql "update availability_requests set requested_at = requested_at - interval '61 minutes'"
	run --separate-stderr unde-availability
	assert_success
}

@test "two runs at once never spend more than the budget between them" {
	export AVAILABILITY_BUDGET_PER_HOUR=4
	unde-availability >"$BATS_TEST_TMPDIR/a" 2>/dev/null & a=$!
	unde-availability >"$BATS_TEST_TMPDIR/b" 2>/dev/null & b=$!
	sa=0; sb=0
	wait $a || sa=$?
	wait $b || sb=$?
	assert_equal "$(printf '%s\n' "$sa" "$sb" | sort | tr '\n' ' ')" "0 75 "
	assert_equal "$(fake_requests zara | jq length)" 4
	assert_equal "$(sql "select count(*) from availability_requests")" 4
}

@test "more stores than the budget allows is a configuration error naming the variable" {
	run --separate-stderr env AVAILABILITY_BUDGET_PER_HOUR=3 unde-availability
	assert_equal "$status" 78
	[[ $stderr == *AVAILABILITY_BUDGET_PER_HOUR* ]]
}

@test "Akamai's 403 page fails the poll: metric 0, error line per store, no rows" {
	export UNDE_METRICS_DIR=$BATS_TEST_TMPDIR
	fake_config zara '{"akamai": true}'
	run --separate-stderr unde-availability
	assert_equal "$status" 75
	assert_stderr_error_code upstream_error
	[[ $stderr == *"Access Denied"* ]]
	grep -qx 'availability_poll_success{brand="zara"} 0' "$BATS_TEST_TMPDIR/unde-availability.prom"
	assert_equal "$(sql "select count(*) from raw_availability")" 0
	assert_equal "$(sql "select status from scraper_logs")" failed
}

@test "a 500 from one store leaves the others' rows and a partial run; garbage is a failure too" {
	fake_fail zara '{"mode": "500", "path": "/itxrest/1/physicalstore/9204/"}'
	fake_fail zara '{"mode": "malformed", "path": "/itxrest/1/physicalstore/9073/"}'
	run --separate-stderr unde-availability
	[ "$status" -ne 0 ]
	assert_json_line_count 2
	assert_equal "$(sql "select status, records_errors from scraper_logs")" 'partial|2'
	assert_equal "$(sql "select count(distinct store_id) from raw_availability")" 2
}

@test "another Inditex brand is polled by the same mechanism when its stores are set" {
	export KZ_BERSHKA_STORES=777 BERSHKA_API_URL=$FAKE_ZARA_URL BERSHKA_USER_AGENT=BershkaApp
	fake_config zara '{"stock": {"777": {"BER1": {"M": 1}}}}'
	run --separate-stderr unde-availability --brand bershka
	assert_success
	assert_jq '.brand == "bershka" and .store_id == 777 and .in_stock == 1'
	assert_equal "$(sql "select brand, product_id from raw_availability")" 'bershka|BER1'
}

@test "without the API configured the stock comes from a local file" {
	unset ZARA_API_URL ZARA_USER_AGENT
	f=$BATS_TEST_TMPDIR/stock.jsonl
	printf '%s\n' '{"brand":"zara","store_id":6643,"product_id":"ZAR9","sizes":{"S":1,"M":0}}' \
		'{"brand":"zara","store_id":9204,"product_id":"ZAR9","sizes":[{"size":"L","quantity":2}]}' \
		'{"brand":"bershka","store_id":5,"product_id":"BER9","sizes":["XS"]}' >"$f"
	run --separate-stderr unde-availability
	assert_equal "$status" 78
	[[ $stderr == *AVAILABILITY_STOCK_FILE* ]]
	run --separate-stderr env AVAILABILITY_STOCK_FILE="$f" unde-availability
	assert_success
	assert_jq -s 'length == 3 and all(.provider == "local")'
	run sql "select brand, store_id, product_id, sizes_in_stock from raw_availability order by 1 desc, 2"
	assert_output $'zara|6643|ZAR9|["S"]\nzara|9204|ZAR9|["L"]\nbershka|5|BER9|["XS"]'
	assert_equal "$(fake_requests zara | jq length)" 0
}

@test "a bad line of the stock file is reported with its line number and the rest is stored" {
	unset ZARA_API_URL ZARA_USER_AGENT
	run --separate-stderr unde-availability --from - <<-'EOF'
	{"brand":"zara","store_id":6643,"product_id":"ZAR9","sizes":{"S":1}}
	{"brand":"zara","store_id":"x","product_id":"ZAR8","sizes":{"S":1}}
	EOF
	assert_equal "$status" 65
	assert_stderr_error_code invalid_field
	[[ $stderr == *'"line":2'* ]]
	assert_equal "$(sql "select product_id from raw_availability")" ZAR9
}

@test "--help, --version and usage errors" {
	run unde-availability --help
	assert_success
	assert_output --partial 'Usage: unde-availability'
	run unde-availability --version
	assert_output --regexp '^unde-availability [0-9]'
	run unde-availability --brand 'Zara!'
	assert_equal "$status" 64
	run unde-availability extra
	assert_equal "$status" 64
}
