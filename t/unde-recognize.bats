#!/usr/bin/env bats
# unde-recognize: the Recognition Orchestrator (spec §8). detect → tag
# (gateway and reranker) → search → rerank → exact / similar / style,
# progressive stage lines, always an answer, one recognition_requests row
# per request.

load lib/common
load lib/pg
load lib/moto
load lib/recog

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	pg_start
	moto_start
	recog_catalog 8
	fake_start gemini gemini.py
	fake_start ximilar ximilar.py
	recog_street "$BATS_FILE_TMPDIR/s3.jpg" 3
	export PHOTO3
	PHOTO3=$(recog_put "$BATS_FILE_TMPDIR/s3.jpg" 22222222-2222-4222-8222-222222222222/photos/p3/original.jpg)
}

teardown_file() {
	fake_stop_all
	moto_stop
	pg_stop
	unde_teardown_file
}

setup() {
	fake_reset gemini
	fake_reset ximilar
	unset GEMINI_API_KEY XIMILAR_API_TOKEN XIMILAR_GW_URL LLM_RERANKER_URL
	export GEMINI_API_URL=$FAKE_GEMINI_URL HTTP_BACKOFF_BASE_MS=20 UNDE_COUNTERS_DIR=$BATS_TEST_TMPDIR
	U=22222222-2222-4222-8222-222222222222
}

recognize() { # recognize [PHOTO_URL] — one request, the stage lines on stdout
	unde-recognize <<<"{\"photo_url\": \"${1:-$PHOTO3}\", \"user_id\": \"$U\"}"
}

# httpd ROUTES — unde-httpd for ROUTES behind a real superserver on a port
# the OS chose; prints the base URL. Its pid is appended to $BATS_TEST_TMPDIR/pids.
httpd() {
	local port pid
	for _ in 1 2 3 4 5; do
		port=$(unde_port_candidate)
		systemd-socket-activate --inetd -a -l "127.0.0.1:$port" -E UNDE_ENV_FILE=/dev/null -E PATH \
			-E PRODUCTION_DB_URL -E S3_ENDPOINT -E S3_BUCKET -E S3_USER_MEDIA_BUCKET -E S3_ACCESS_KEY \
			-E S3_SECRET_KEY -E S3_REGION -E GEMINI_API_URL -E UNDE_COUNTERS_DIR \
			${GEMINI_API_KEY:+-E GEMINI_API_KEY} ${XIMILAR_GW_URL:+-E XIMILAR_GW_URL} \
			${LLM_RERANKER_URL:+-E LLM_RERANKER_URL} \
			unde-httpd --routes "${ROUTES_DIR:-$UNDE_TOP_SRCDIR/etc/httpd}/$1" </dev/null >/dev/null 2>>"$BATS_TEST_TMPDIR/httpd.log" 3>&- &
		pid=$!
		echo "$pid" >>"$BATS_TEST_TMPDIR/pids"
		for _ in $(seq 400); do
			curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" && { echo "http://127.0.0.1:$port"; return 0; }
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
	done
	return 1
}

teardown() {
	if [ -f "$BATS_TEST_TMPDIR/pids" ]; then
		while read -r p; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done <"$BATS_TEST_TMPDIR/pids"
	fi
	unde_teardown
}

@test "a street photo of a catalog product: detected, tagged, matches exact, done; the request logged" {
	run --separate-stderr recognize
	assert_success
	assert_json_line_count 4
	assert_equal "$(jq -sr 'map(.stage) | join(",")' <<<"$output")" detected,tagged,matches,done
	rid=$(jq -sr '.[3].request_id' <<<"$output")
	jq -s -e --arg r "$rid" 'all(.[]; .request_id == $r) and .[0].items[0].category == "whole_photo"
		and .[1].tags.color == "yellow" and .[1].providers == {"ximilar_gw": "local", "llm_reranker": "local"}
		and .[2].match_type == "exact" and (.[2].matches | length) == 1 and .[2].matches[0].sku_id == "Z3"
		and .[2].matches[0].similarity_pct > 85 and .[2].matches[0].metadata.brand == "zara"
		and .[3].items[0].match_type == "exact" and .[3].items[0].matches[0].sku_id == "Z3"
		and (.[3].total_ms | type) == "number" and (.[3] | has("degraded") | not)' <<<"$output" >/dev/null ||
		fail "$output"
	run pq "select user_id, photo_url = '$PHOTO3', jsonb_array_length(detected_items), items_detected, items_matched,
		final_matches->0->0->>'sku_id', search_results->0->0->>'sku_id', tags->0->>'color',
		detection_time_ms >= 0 and search_time_ms >= 0 and total_time_ms >= detection_time_ms
		from recognition_requests where id = '$rid'"
	assert_output "$U|t|1|1|1|Z3|Z3|yellow|t"
}

@test "a weaker visual match gives similar (top 5 with %), a weak one the attribute fallback (style)" {
	export GEMINI_API_KEY=test-key
	fake_config gemini '{"reply": {"visual": 0.6, "reason": "alike"}}'
	run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].match_type == "similar" and (.[2].matches | length) == 5 and .[2].matches[0].sku_id == "Z3"
		and .[2].matches[0].similarity_pct == 72 and all(.[2].matches[]; .match_type == "similar")' <<<"$output" >/dev/null ||
		fail "$output"
	fake_config gemini '{"reply": {"visual": 0.1, "reason": "different"}}'
	run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].match_type == "style" and .[2].matches[0].sku_id == "Z3" and .[2].matches[0].colour == "Yellow"
		and all(.[2].matches[]; .match_type == "style") and (.[2].matches | length) == 5
		and ([.[2].matches[1:][] | .in_stock] | . == (sort | reverse))' <<<"$output" >/dev/null || fail "$output"
}

@test "the attribute fallback counts stock only in stores of the country (KZ) and, when set, the city" {
	export GEMINI_API_KEY=test-key
	fake_config gemini '{"reply": {"visual": 0.1, "reason": "different"}}'
	recog_stores
	pq "update products set availability = case sku when 'Z0' then '{\"7000\": [\"M\"]}' when 'Z1' then '{\"6643\": [\"S\"]}'
		when 'Z2' then '{\"8000\": [\"L\"]}' when 'Z4' then '{\"9999\": [\"M\"]}' else '{}' end::jsonb" >/dev/null
	run --separate-stderr recognize
	assert_success
	# Z3 matches the colour; then the products in a KZ store: Almaty's mall, Astana's own; not Dubai, not an unknown store
	jq -s -e '.[2].match_type == "style" and .[2].matches[0].sku_id == "Z3" and .[2].matches[0].in_stock == false
		and (.[2].matches[1:3] | map(.sku_id) | sort) == ["Z1", "Z2"] and all(.[2].matches[1:3][]; .in_stock)
		and all(.[2].matches[3:][]; .in_stock == false and .in_stock_stores == [])
		and (.[2].matches[] | select(.sku_id == "Z1") | .in_stock_stores) == [{"id": "zara-mega", "name": "Zara",
			"city": "Almaty", "mall_id": "mega-almaty", "floor": 1}]' <<<"$output" >/dev/null || fail "$output"
	RECOGNITION_STOCK_CITY=astana run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].matches[1].sku_id == "Z2" and .[2].matches[1].in_stock_stores[0].id == "zara-astana"
		and all(.[2].matches[2:][]; .in_stock == false)' <<<"$output" >/dev/null || fail "$output"
	RECOGNITION_STOCK_COUNTRY=AE run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].matches[1].sku_id == "Z0" and .[2].matches[1].in_stock_stores[0].city == "Dubai"
		and all(.[2].matches[2:][]; .in_stock == false)' <<<"$output" >/dev/null || fail "$output"
	pq "update products set availability = case when substr(sku, 2)::int % 2 = 0 then '{\"6643\": [\"M\"]}' else '{}' end::jsonb;
		delete from stores; delete from malls" >/dev/null
}

@test "through unde-httpd: the gateway and reranker as services; POST /recognize streams the stages" {
	export XIMILAR_GW_URL LLM_RERANKER_URL GEMINI_API_KEY=test-key
	fake_config gemini '{"reply": {"visual": 0.95, "reason": "the same jacket"}}'
	XIMILAR_GW_URL=$(httpd ximilar.routes)
	LLM_RERANKER_URL=$(httpd rerank.routes)
	base=$(httpd recognize.routes)
	# the reranker is slow: the detected line must come before it answers
	fake_fail gemini '{"mode": "slow", "delay_ms": 2500, "count": -1}'
	mkfifo "$BATS_TEST_TMPDIR/stream"
	curl -sS -N --max-time 60 --data-binary "{\"photo_url\": \"$PHOTO3\", \"user_id\": \"$U\"}" "$base/recognize" \
		>"$BATS_TEST_TMPDIR/stream" &
	cpid=$!
	exec 4<"$BATS_TEST_TMPDIR/stream"
	read -r -t 60 first <&4
	[ "$(jq -r .stage <<<"$first")" = detected ] || fail "first line: $first"
	answered=$(fake_requests gemini | jq '[.[] | select(.status != null)] | length')
	rest=$(cat <&4)
	exec 4<&-
	wait "$cpid"
	[ "$answered" = 0 ] || fail "the reranker had answered $answered calls before the detected line"
	jq -s -e 'map(.stage) == ["tagged", "matches", "done"] and .[1].match_type == "exact"
		and .[1].matches[0].sku_id == "Z3" and .[1].matches[0].judged_by == "gemini"' <<<"$rest" >/dev/null || fail "$rest"
	run curl -sS --max-time 10 --data-binary '{"photo_url": 3}' "$base/recognize"
	assert_output --partial 'missing_field'
}

@test "through unde-httpd, a caller's request_id that is no UUID stays on every line; the row (a UUID) keeps it, feedback finds it" {
	export XIMILAR_GW_URL LLM_RERANKER_URL
	XIMILAR_GW_URL=$(httpd ximilar.routes)
	LLM_RERANKER_URL=$(httpd rerank.routes)
	base=$(httpd recognize.routes)
	rid=app-42.Req:7_x
	run curl -sS -N --max-time 60 -w '\n%{http_code}\n' -H "X-Request-Id: $rid" \
		--data-binary "{\"photo_url\": \"$PHOTO3\", \"user_id\": \"$U\"}" "$base/recognize"
	assert_success
	assert_equal "${lines[-1]}" 200 || fail "$output"
	body=$(sed '$d' <<<"$output")
	jq -s -e --arg r "$rid" 'map(.stage) == ["detected", "tagged", "matches", "done"] and all(.[]; .request_id == $r)
		and .[2].matches[0].sku_id == "Z3" and (.[3].recognition_id | test("^[0-9a-f-]{36}$"))
		and .[0].recognition_id == .[3].recognition_id' <<<"$body" >/dev/null || fail "$body"
	id=$(jq -sr '.[3].recognition_id' <<<"$body")
	wait_until 10 recog_row_written "$id"
	assert_equal "$(pq "select request_id, items_detected from recognition_requests where id = '$id'")" "$rid|1"
	# the gateway's and the reranker's calls carried it too
	jq -Rn -e --arg r "$rid" '[inputs | fromjson? | select(.route? and .request_id == $r) | "\(.route) \(.status)"] | unique
		== ["POST /detect 200", "POST /recognize 200", "POST /rerank 200", "POST /search 200", "POST /tag 200"]' \
		"$BATS_TEST_TMPDIR/httpd.log" >/dev/null || fail "$(cat "$BATS_TEST_TMPDIR/httpd.log")"
	run curl -sS --max-time 20 --data-binary "{\"request_id\": \"$rid\", \"user_feedback\": {\"correct\": false}}" \
		"$base/recognize/feedback"
	assert_success
	assert_jq --arg r "$rid" '.updated == true and .request_id == $r'
	assert_equal "$(pq "select user_feedback->>'correct' from recognition_requests where id = '$id'")" false
	run --separate-stderr unde-recognize feedback <<<"{\"recognition_id\": \"$id\", \"user_feedback\": {\"correct\": true}}"
	assert_success
	assert_equal "$(pq "select user_feedback->>'correct' from recognition_requests where id = '$id'")" true
}

@test "two detected items run each their own steps: tagged and matches lines per item, one done" {
	export XIMILAR_API_TOKEN=test-token XIMILAR_API_URL=$FAKE_XIMILAR_URL XIMILAR_COLLECTION_ID=coll-1
	fake_config ximilar '{"objects": [{"name": "Upper", "bound_box": [20, 30, 220, 330], "prob": 0.93, "Category": "Clothing/Upper",
		"_tags": {"Subcategory": [{"name": "jacket", "prob": 0.8}], "Color": [{"name": "yellow", "prob": 0.9}]}},
		{"name": "Shoes", "bound_box": [10, 380, 120, 450], "prob": 0.71, "Category": "Footwear/Sneakers"}]}'
	run --separate-stderr recognize
	assert_success
	jq -s -e '(map(.stage) | sort) == ["detected", "done", "matches", "matches", "tagged", "tagged"]
		and .[0].provider == "ximilar" and (.[0].items | length) == 2
		and (map(select(.stage == "tagged")) | map(.item) | sort) == [0, 1]
		and (.[-1].items | length) == 2 and .[-1].items[0].tags.type == "jacket"
		and .[-1].items[0].match_type == "style" and .[-1].items[0].matches[0].sku_id == "Z3"' <<<"$output" >/dev/null ||
		fail "$output"
	rid=$(jq -sr '.[-1].request_id' <<<"$output")
	assert_equal "$(pq "select items_detected, jsonb_array_length(final_matches) from recognition_requests where id = '$rid'")" "2|2"
}

@test "Ximilar failing one request's photo (its _status 500): that request detected locally, the next by Ximilar; a bad record between fails alone" {
	export XIMILAR_API_TOKEN=test-token XIMILAR_API_URL=$FAKE_XIMILAR_URL XIMILAR_COLLECTION_ID=coll-1
	recog_street "$BATS_TEST_TMPDIR/s5.jpg" 5
	photo5=$(recog_put "$BATS_TEST_TMPDIR/s5.jpg" "$U/photos/p5/original.jpg")
	sha=$(sha256sum "$BATS_FILE_TMPDIR/s3.jpg" | cut -d' ' -f1)
	fake_config ximilar "{\"objects\": [{\"name\": \"Upper\", \"bound_box\": [20, 30, 220, 330], \"prob\": 0.93,
		\"Category\": \"Clothing/Upper\"}], \"record_errors\": {\"$sha\": {\"code\": 500, \"text\": \"Internal error\"}}}"
	printf '{"photo_url": "%s", "n": 1}\n{"photo_url": ["%s"], "n": 2}\n{"photo_url": "%s", "n": 3}\n' \
		"$PHOTO3" "$PHOTO3" "$photo5" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-recognize <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	jq -s -e 'map(select(.stage == "done")) | length == 2 and map(.n) == [1, 3]' <<<"$output" >/dev/null || fail "$output"
	jq -s -e 'map(select(.stage == "detected")) | map(.provider) == ["local", "ximilar"]
		and .[0].items[0].category == "whole_photo" and .[1].items[0].category == "Clothing/Upper"' <<<"$output" >/dev/null ||
		fail "$output"
	jq -s -e '(.[0:4] | map(.stage)) == ["detected", "tagged", "matches", "done"]
		and .[2].matches[0].sku_id == "Z3"' <<<"$output" >/dev/null || fail "the first request did not finish first: $output"
	jq -Rne '[inputs | fromjson? | select(.level == "error")] | length == 1 and .[0].record.n == 2
		and .[0].error.code == "missing_field"' <<<"$stderr" >/dev/null || fail "one error line, for record 2: $stderr"
}

@test "the gateway's search down: the attribute fallback over the item's tags, marked degraded" {
	export XIMILAR_GW_URL
	printf 'POST /detect timeout=20 unde-ximilar detect\nPOST /tag timeout=20 unde-ximilar tag\nPOST /search timeout=20 false\n' \
		>"$BATS_TEST_TMPDIR/gw.routes"
	XIMILAR_GW_URL=$(ROUTES_DIR=$BATS_TEST_TMPDIR httpd gw.routes)
	run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].degraded == "search_unavailable" and .[2].match_type == "style"
		and .[2].matches[0].colour == "Yellow"' <<<"$output" >/dev/null || fail "$output"
}

@test "the reranker down: the gateway's order and scores, marked degraded" {
	export LLM_RERANKER_URL=http://127.0.0.1:9
	run --separate-stderr recognize
	assert_success
	jq -s -e '.[2].degraded == "reranker_unavailable" and .[2].match_type == "exact" and .[2].matches[0].sku_id == "Z3"
		and .[3].degraded == true and .[1].providers == {"ximilar_gw": "local"}' <<<"$output" >/dev/null || fail "$output"
	run unde-recognize metrics
	assert_output --partial 'recognition_orchestrator_errors{step="llm-reranker/rerank"} 1'
	assert_output --partial 'recognition_requests{result="degraded"} 1'
}

@test "recognition_queue_size counts the recognitions in flight and forgets a killed one at once" {
	export GEMINI_API_KEY=test-key
	fake_fail gemini '{"mode":"slow","delay_ms":20000,"count":-1}'
	run unde-recognize metrics
	assert_output --partial 'recognition_queue_size 0'
	# the command itself in the background, so $! is its pid
	unde-recognize <<<"{\"photo_url\": \"$PHOTO3\", \"user_id\": \"$U\"}" >/dev/null 2>&1 &
	r=$!
	for _ in $(seq 1200); do
		[[ $(fake_requests gemini | jq length) -ge 1 ]] && break
		sleep 0.025
	done
	run unde-recognize metrics
	assert_output --partial 'recognition_queue_size 1'
	kill -9 "$r"
	wait "$r" || true
	run unde-recognize metrics
	assert_output --partial 'recognition_queue_size 0'
}

@test "the gateway down: no detection, a clear upstream_unavailable error" {
	export XIMILAR_GW_URL=http://127.0.0.1:9
	run --separate-stderr recognize
	assert_equal "$status" 69
	assert_stderr_error_code upstream_unavailable
	run --separate-stderr unde-recognize --online <<<"{\"photo_url\": \"$PHOTO3\"}"
	assert_jq '.error.code == "upstream_unavailable"'
}

@test "feedback: the request's user_feedback set later; an unknown request refused" {
	rid=$(recognize 2>/dev/null | jq -sr '.[-1].request_id')
	run --separate-stderr unde-recognize feedback <<<"{\"request_id\": \"$rid\", \"user_feedback\": {\"correct\": true}}"
	assert_success
	assert_jq '.updated == true'
	assert_equal "$(pq "select user_feedback->>'correct' from recognition_requests where id = '$rid'")" true
	run --separate-stderr unde-recognize feedback <<<'{"request_id": "33333333-3333-4333-8333-333333333333", "user_feedback": {}}'
	assert_equal "$status" 65
	assert_stderr_error_code not_found
}

@test "bad records: no photo_url, a bad user_id, a photo that is not there; the stream goes on" {
	printf '{}\n{"photo_url": "%s", "user_id": "me"}\n{"photo_url": "%s/unde-user-media/none.jpg"}\n{"photo_url": "%s"}\n' \
		"$PHOTO3" "$S3_ENDPOINT" "$PHOTO3" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-recognize <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_equal "$(jq -sr 'map(select(.stage == "done")) | length' <<<"$output")" 1
	[[ $stderr == *missing_field* && $stderr == *invalid_field* && $stderr == *photo_not_found* ]] || fail "$stderr"
}

@test "--help, --version, usage" {
	run unde-recognize --help
	assert_success
	assert_output --partial 'feedback'
	run unde-recognize --version
	assert_output --regexp '^unde-recognize [0-9]'
	run unde-recognize frob
	assert_equal "$status" 64
}
