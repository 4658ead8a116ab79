#!/usr/bin/env bats
# unde-rerank: the LLM Reranker (spec §10). tag (style, occasion,
# brand_style, season) and rerank (0.7 × visual + 0.3 × semantic) with
# Gemini, or locally (descriptor similarity) without a key or whenever
# Gemini fails.

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
	recog_street "$BATS_FILE_TMPDIR/s3.jpg" 3
	export CROP3
	CROP3=$(recog_put "$BATS_FILE_TMPDIR/s3.jpg" anonymous/recognition/t/1.jpg)
	# the gateway's candidates for it, as unde-ximilar search gives them
	export CANDS
	CANDS=$(unde-ximilar search <<<"{\"crop_url\": \"$CROP3\", \"top_k\": 4}" 2>/dev/null | jq -c .candidates)
}

teardown_file() {
	fake_stop_all
	moto_stop
	pg_stop
	unde_teardown_file
}

setup() {
	fake_reset gemini
	unset GEMINI_API_KEY
	export GEMINI_API_URL=$FAKE_GEMINI_URL HTTP_BACKOFF_BASE_MS=20 UNDE_COUNTERS_DIR=$BATS_TEST_TMPDIR
}

rerank() { # rerank TAGS — the rerank of CROP3's candidates with these tags
	jq -nc --arg c "$CROP3" --argjson k "$CANDS" --argjson t "$1" '{crop_url: $c, candidates: $k, tags: $t}' |
		unde-rerank rerank
}

@test "local rerank: the product itself first, score = 0.7 × visual + 0.3 × semantic" {
	[ "$(jq -r '.[0].sku_id' <<<"$CANDS")" = Z3 ]
	run --separate-stderr rerank '{"type": "jacket", "color": "yellow"}'
	assert_success
	assert_jq '.provider == "local" and (.ranked | length) == 4 and .ranked[0].sku_id == "Z3"
		and .ranked[0].visual > 0.85 and .ranked[0].semantic == 1
		and ((.ranked[0].score - (0.7 * .ranked[0].visual + 0.3 * .ranked[0].semantic)) | fabs) < 0.001
		and (.ranked | map(.semantic)) as $s | ($s[1:] | all(. == 0.5))
		and ([.ranked[].score] | . == (sort | reverse)) and .ranked[0].judged_by == "local"
		and .providers_skipped[0].reason == "no_key"'
}

@test "semantic: the share of tags found in the metadata; none comparable → the score is the visual one" {
	run --separate-stderr rerank '{"color": "pink", "material": "wool"}'
	assert_jq '(.ranked[] | select(.sku_id == "Z3") | .semantic) == 0'
	run --separate-stderr rerank '{"style": null}'
	assert_jq 'all(.ranked[]; .semantic == null and .score == .visual)'
}

@test "Gemini rerank: both images inline per candidate, asked in parallel; the answer's visual used; cost counted" {
	export GEMINI_API_KEY=test-key
	fake_config gemini '{"reply": {"visual": 0.42, "reason": "same cut, other colour"}}'
	run --separate-stderr rerank '{"color": "yellow"}'
	assert_success
	assert_jq '.provider == "gemini" and all(.ranked[]; .visual == 0.42 and .judged_by == "gemini"
		and .reason == "same cut, other colour")
		and (.ranked[] | select(.sku_id == "Z3") | .score) == 0.594'
	run fake_requests gemini
	assert_jq 'length == 4 and all(.[]; (.json.contents[0].parts | map(select(.inline_data)) | length) == 2
		and .json.generationConfig.responseMimeType == "application/json"
		and .headers["x-goog-api-key"] == "test-key") and (map(.client_port) | unique | length) == 4'
	run unde-rerank metrics
	[[ $output =~ llm_reranker_cost_microdollars\ [1-9] ]] || fail "$output"
}

@test "Gemini failing (500, 429, slow, blocked, garbage): judged locally, never a failed record" {
	export GEMINI_API_KEY=test-key GEMINI_TIMEOUT=1
	fake_config gemini '{"reply": {"visual": 0.42, "reason": "x"}}'
	for rule in '{"mode": "500", "count": -1}' '{"mode": "429", "retry_after": "1", "count": -1}' \
		'{"mode": "slow", "delay_ms": 3000, "count": -1}' '{"mode": "malformed", "count": -1}'; do
		fake_reset gemini
		fake_config gemini '{"reply": {"visual": 0.42, "reason": "x"}}'
		fake_fail gemini "$rule"
		run --separate-stderr rerank '{}'
		assert_success
		assert_jq '.provider == "local" and .ranked[0].sku_id == "Z3" and .ranked[0].visual > 0.85
			and (.providers_skipped | length) == 4'
	done
	fake_reset gemini
	fake_config gemini '{"blocked": true}'
	run --separate-stderr rerank '{}'
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "blocked"'
	fake_config gemini '{"blocked": false, "reply_text": "I think they look alike"}'
	run --separate-stderr rerank '{}'
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "malformed"'
	fake_config gemini '{"reply_text": null, "reply": {"visual": 7}}'
	run --separate-stderr rerank '{}'
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "malformed"'
}

@test "tag: Gemini's style, occasion, brand_style, season; locally the season from the colours" {
	export GEMINI_API_KEY=test-key
	fake_config gemini '{"reply": {"style": "streetwear", "occasion": "casual/urban", "brand_style": "oversized", "season": "autumn"}}'
	run --separate-stderr unde-rerank tag <<<"{\"url\": \"$CROP3\"}"
	assert_success
	assert_jq '.provider == "gemini" and .style == "streetwear" and .occasion == "casual/urban"
		and .brand_style == "oversized" and .season == "autumn"'
	unset GEMINI_API_KEY
	run --separate-stderr unde-rerank tag <<<"{\"url\": \"$CROP3\"}"
	assert_success
	assert_jq '.provider == "local" and .style == null and .season == "spring-summer"'
	recog_street "$BATS_TEST_TMPDIR/n.jpg" 1
	url=$(recog_put "$BATS_TEST_TMPDIR/n.jpg" anonymous/recognition/t/navy.jpg)
	run --separate-stderr unde-rerank tag <<<"{\"url\": \"$url\"}"
	assert_jq '.season == "autumn-winter"'
}

@test "bad records: no crop_url, candidates not an array, a candidate without sku_id" {
	printf '{"candidates": []}\n{"crop_url": "%s", "candidates": 3}\n{"crop_url": "%s", "candidates": [{"score": 1}]}\n{"crop_url": "%s", "candidates": []}\n' \
		"$CROP3" "$CROP3" "$CROP3" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-rerank rerank <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_json_line_count 1
	assert_jq '.ranked == []'
	[[ $stderr == *missing_field* && $stderr == *"candidates[0].sku_id"* ]] || fail "$stderr"
}

@test "--help, --version, usage" {
	run unde-rerank --help
	assert_success
	assert_output --partial 'tag|rerank'
	run unde-rerank --version
	assert_output --regexp '^unde-rerank [0-9]'
	run unde-rerank nonsense
	assert_equal "$status" 64
}
