#!/usr/bin/env bats
# unde-ximilar: the Ximilar Gateway (spec §9). detect crops into the private
# user-media bucket, tag, search; Ximilar when a token is set, the local
# provider (whole photo, colours, descriptor search in pgvector) without
# one or whenever Ximilar fails.

load lib/common
load lib/pg
load lib/moto
load lib/recog

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	pg_start
	moto_start
	recog_catalog 8
	fake_start ximilar ximilar.py
}

teardown_file() {
	fake_stop_all
	moto_stop
	pg_stop
	unde_teardown_file
}

setup() {
	fake_reset ximilar
	unset XIMILAR_API_TOKEN
	export XIMILAR_API_URL=$FAKE_XIMILAR_URL XIMILAR_COLLECTION_ID=coll-1 HTTP_BACKOFF_BASE_MS=20
	export UNDE_COUNTERS_DIR=$BATS_TEST_TMPDIR
}

street() { # street I KEY — product I's street photo in the user-media bucket; its URL
	recog_street "$BATS_TEST_TMPDIR/s.jpg" "$1" && recog_put "$BATS_TEST_TMPDIR/s.jpg" "$2"
}

@test "local detect: the whole photo is the one item, its crop stored in the private bucket" {
	url=$(street 1 u1/photos/p1/original.jpg)
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\", \"user_id\": \"11111111-1111-4111-8111-111111111111\", \"request_id\": \"r-1\"}"
	assert_success
	assert_jq '.provider == "local" and (.items | length) == 1 and .items[0].bbox == [0, 0, 300, 452]
		and .items[0].category == "whole_photo" and .items[0].confidence == 1 and .width == 300
		and .providers_skipped[0].reason == "no_key" and .request_id == "r-1"'
	key=11111111-1111-4111-8111-111111111111/recognition/r-1/1.jpg
	assert_jq --arg u "$S3_ENDPOINT/unde-user-media/$key" '.items[0].crop_url == $u'
	moto_aws s3 cp "s3://unde-user-media/$key" "$BATS_TEST_TMPDIR/crop.jpg" >/dev/null
	assert_equal "$(vipsheader -f width "$BATS_TEST_TMPDIR/crop.jpg")x$(vipsheader -f height "$BATS_TEST_TMPDIR/crop.jpg")" 300x452
	# private: not readable without a signature
	assert_equal "$(curl -s -o /dev/null -w '%{http_code}' "$S3_ENDPOINT/unde-user-media/$key")" 403
}

# outfit FILE — a generated 400x600 photo on a light background: a red top
# [100,60,300,280) right over navy trousers [120,280,280,540), with a
# green bag [300,330,380,450) beside them.
outfit() {
	local t=$BATS_TEST_TMPDIR
	vips black "$t/o0.v" 400 600 --bands 3 && vips linear "$t/o0.v" "$t/bg.v" "1 1 1" "232 230 228" --uchar &&
		vips black "$t/o1.v" 200 220 --bands 3 && vips linear "$t/o1.v" "$t/top.v" "1 1 1" "200 30 35" --uchar &&
		vips black "$t/o2.v" 160 260 --bands 3 && vips linear "$t/o2.v" "$t/low.v" "1 1 1" "25 35 80" --uchar &&
		vips black "$t/o3.v" 70 120 --bands 3 && vips linear "$t/o3.v" "$t/bag.v" "1 1 1" "40 140 60" --uchar &&
		vips insert "$t/bg.v" "$t/top.v" "$t/a.v" 100 60 && vips insert "$t/a.v" "$t/low.v" "$t/b.v" 120 280 &&
		vips insert "$t/b.v" "$t/bag.v" "$1[Q=90]" 310 330
}

@test "local detect: garments on a plain background are found: a top over trousers cut into upper and lower body, a bag beside" {
	outfit "$BATS_TEST_TMPDIR/o.jpg"
	url=$(recog_put "$BATS_TEST_TMPDIR/o.jpg" u1b/outfit.jpg)
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\", \"request_id\": \"r-1b\"}"
	assert_success
	# boxes found on a 128-pixel shrink: a few pixels of slack
	assert_jq 'def near($b): [range(4) as $i | (.bbox[$i] - $b[$i]) | fabs <= 8] | all;
		.provider == "local" and (.items | length) == 3
		and (.items[0] | .category == "upper_body" and near([100, 60, 300, 280]))
		and (.items[1] | .category == "lower_body" and near([120, 280, 280, 540]))
		and (.items[2] | .category == "garment" and near([310, 330, 380, 450]))
		and all(.items[]; .confidence > 0 and .confidence <= 1)'
	w=$(jq '.items[1].bbox | .[2] - .[0]' <<<"$output") h=$(jq '.items[1].bbox | .[3] - .[1]' <<<"$output")
	moto_aws s3 cp s3://unde-user-media/anonymous/recognition/r-1b/2.jpg "$BATS_TEST_TMPDIR/c.jpg" >/dev/null
	assert_equal "$(vipsheader -f width "$BATS_TEST_TMPDIR/c.jpg")x$(vipsheader -f height "$BATS_TEST_TMPDIR/c.jpg")" "${w}x$h"
	# the trousers' crop is navy: the region is the garment, not the background
	run --separate-stderr unde-ximilar tag <<<"{\"url\": \"$S3_ENDPOINT/unde-user-media/anonymous/recognition/r-1b/2.jpg\"}"
	assert_jq '.color == "navy"'
	# no plain background (noise all over): nothing to tell apart, the whole photo
	vips gaussnoise "$BATS_TEST_TMPDIR/n.v" 400 600 --mean 128 --sigma 70 &&
		vips bandjoin "$BATS_TEST_TMPDIR/n.v $BATS_TEST_TMPDIR/n.v $BATS_TEST_TMPDIR/n.v" "$BATS_TEST_TMPDIR/n3.v" &&
		vips cast "$BATS_TEST_TMPDIR/n3.v" "$BATS_TEST_TMPDIR/noise.jpg" uchar
	url=$(recog_put "$BATS_TEST_TMPDIR/noise.jpg" u1b/noise.jpg)
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\"}"
	assert_success
	assert_jq '(.items | length) == 1 and .items[0].category == "whole_photo"'
}

@test "Ximilar detect: each box cropped from the photo and stored; the request carries the photo as _base64" {
	export XIMILAR_API_TOKEN=test-token
	url=$(street 2 u2/p.jpg)
	fake_config ximilar '{"objects": [{"name": "Upper", "bound_box": [20, 30, 220, 330], "prob": 0.93, "Category": "Clothing/Upper"},
		{"name": "Shoes", "bound_box": [10, 380, 120, 450], "prob": 0.71, "Category": "Footwear/Sneakers"},
		{"name": "Off", "bound_box": [10, 10, 900, 900], "prob": 0.5, "Category": "Clothing/Lower"}]}'
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\", \"request_id\": \"r-2\"}"
	assert_success
	assert_jq '.provider == "ximilar" and (.items | length) == 2 and .items[0].bbox == [20, 30, 220, 330]
		and .items[0].category == "Clothing/Upper" and .items[1].confidence == 0.71
		and (.items[1].crop_url | endswith("/unde-user-media/anonymous/recognition/r-2/2.jpg"))'
	moto_aws s3 cp s3://unde-user-media/anonymous/recognition/r-2/1.jpg "$BATS_TEST_TMPDIR/c.jpg" >/dev/null
	assert_equal "$(vipsheader -f width "$BATS_TEST_TMPDIR/c.jpg")x$(vipsheader -f height "$BATS_TEST_TMPDIR/c.jpg")" 200x300
	run fake_requests ximilar /tagging/fashion/v2/detect
	assert_jq 'length == 1 and (.[0].json.records[0]._base64 | length) > 1000
		and .[0].headers.authorization == "Token test-token"'
	fake_config ximilar '{"objects": []}'
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\"}"
	assert_jq '.provider == "ximilar" and (.items | length) == 1 and .items[0].category == "whole_photo"'
}

@test "Ximilar failing (429, 500, slow, garbage): the local provider answers, never a failed record" {
	export XIMILAR_API_TOKEN=test-token XIMILAR_TIMEOUT=1
	url=$(street 3 u3/p.jpg)
	for rule in '{"mode": "429", "retry_after": "1", "count": -1}' '{"mode": "500", "count": -1}' \
		'{"mode": "slow", "delay_ms": 3000, "count": -1}' '{"mode": "malformed", "count": -1}'; do
		fake_reset ximilar
		fake_fail ximilar "$rule"
		run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\"}"
		assert_success
		assert_jq '.provider == "local" and (.items | length) == 1 and (.providers_skipped[0].reason | IN("429", "5xx", "timeout", "malformed"))'
	done
	fake_reset ximilar
	fake_fail ximilar '{"mode": "429", "retry_after": "1", "count": -1}'
	unde-ximilar detect <<<"{\"url\": \"$url\"}" >/dev/null 2>&1
	run unde-ximilar metrics
	assert_output --partial 'ximilar_gw_rate_limit_hits'
	[[ $output =~ ximilar_gw_rate_limit_hits\ [1-9] ]] || fail "no rate-limit hit counted: $output"
}

@test "Ximilar failing one record of a stream (its _status 500): that record answered locally with the reason, the others by Ximilar" {
	export XIMILAR_API_TOKEN=test-token
	fake_config ximilar '{"objects": [{"name": "Upper", "bound_box": [20, 30, 220, 330], "prob": 0.93, "Category": "Clothing/Upper"}]}'
	recog_street "$BATS_TEST_TMPDIR/a.jpg" 1 && a=$(recog_put "$BATS_TEST_TMPDIR/a.jpg" u3d/a.jpg)
	recog_street "$BATS_TEST_TMPDIR/b.jpg" 2 && b=$(recog_put "$BATS_TEST_TMPDIR/b.jpg" u3d/b.jpg)
	recog_street "$BATS_TEST_TMPDIR/c.jpg" 4 && c=$(recog_put "$BATS_TEST_TMPDIR/c.jpg" u3d/c.jpg)
	sha=$(sha256sum "$BATS_TEST_TMPDIR/b.jpg" | cut -d' ' -f1)
	fake_config ximilar "{\"record_errors\": {\"$sha\": {\"code\": 500, \"text\": \"Internal error\"}}}"
	printf '{"url": "%s", "n": 1}\n{"url": "%s", "n": 2}\n{"url": "%s", "n": 3}\n' "$a" "$b" "$c" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-ximilar detect <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_json_line_count 3
	assert_jq -s 'map(.n) == [1, 2, 3] and map(.provider) == ["ximilar", "local", "ximilar"]
		and .[0].items[0].category == "Clothing/Upper" and .[1].items[0].category == "whole_photo"
		and .[1].providers_skipped[0].reason == "5xx"
		and (.[1].providers_skipped[0].message | contains("record 1: 500 Internal error"))
		and (.[0] | has("providers_skipped") | not) and (.[2] | has("providers_skipped") | not)'
	# Ximilar was asked for each of the three: the second failed there, not here
	assert_equal "$(fake_requests ximilar /tagging/fashion/v2/detect | jq length)" 3
	run unde-ximilar metrics
	[[ $output =~ ximilar_gw_errors\{endpoint=\"detect\"\}\ 1($|[^0-9]) ]] || fail "one detect error expected: $output"
}

@test "a record Ximilar refuses (its _status 400) is tagged locally; a bad record between gets its error line, exit 65" {
	export XIMILAR_API_TOKEN=test-token
	recog_street "$BATS_TEST_TMPDIR/a.jpg" 0 && a=$(recog_put "$BATS_TEST_TMPDIR/a.jpg" u3e/a.jpg)
	recog_street "$BATS_TEST_TMPDIR/b.jpg" 5 && b=$(recog_put "$BATS_TEST_TMPDIR/b.jpg" u3e/b.jpg)
	sha=$(sha256sum "$BATS_TEST_TMPDIR/a.jpg" | cut -d' ' -f1)
	fake_config ximilar "{\"record_errors\": {\"$sha\": {\"code\": 400, \"text\": \"Unsupported image\"}}}"
	printf '{"url": "%s"}\n{"url": 7}\n{"url": "%s"}\n' "$a" "$b" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-ximilar tag <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_json_line_count 2
	assert_jq -s 'map(.provider) == ["local", "ximilar"] and .[0].color == "red"
		and .[0].providers_skipped[0].reason == "4xx"
		and (.[0].providers_skipped[0].message | contains("400 Unsupported image")) and .[1].type == "shirts"'
	assert_stderr_error_code missing_field
	jq -Rne '[inputs | fromjson? | select(.level == "error")] | length == 1 and .[0].record == {"url": 7}' <<<"$stderr" >/dev/null ||
		fail "one error line carrying the bad record expected: $stderr"
}

@test "one rate limit for the host: a second process without a token in time answers locally, Ximilar not called" {
	# one request per 20 s: the second process cannot get a token within its
	# 300 ms however slowly it starts on a loaded machine
	export XIMILAR_API_TOKEN=test-token XIMILAR_RATE_LIMIT=0.05
	url=$(street 3 u3b/p.jpg)
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\"}"
	assert_jq '.provider == "ximilar"'
	run --separate-stderr env UNDE_DEADLINE_MS=300 unde-ximilar detect <<<"{\"url\": \"$url\"}"
	assert_success
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "no_time"'
	assert_equal "$(fake_requests ximilar /tagging/ | jq length)" 1
}

@test "a 429's Retry-After stops every gateway process until it has passed" {
	export XIMILAR_API_TOKEN=test-token UNDE_DEADLINE_MS=1500
	url=$(street 3 u3c/p.jpg)
	fake_fail ximilar '{"mode": "429", "retry_after": "30", "count": 1}'
	run --separate-stderr unde-ximilar detect <<<"{\"url\": \"$url\"}"
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "429"'
	run --separate-stderr unde-ximilar tag <<<"{\"url\": \"$url\"}"
	assert_success
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "no_time"'
	assert_equal "$(fake_requests ximilar /tagging/ | jq length)" 1
	rm -f "$UNDE_COUNTERS_DIR/ximilar-gw.bucket"
	run --separate-stderr unde-ximilar tag <<<"{\"url\": \"$url\"}"
	assert_jq '.provider == "ximilar"'
}

@test "local tag: the dominant colour with its name and hex" {
	url=$(street 0 u4/p.jpg)
	run --separate-stderr unde-ximilar tag <<<"{\"url\": \"$url\", \"category\": \"jacket\"}"
	assert_success
	assert_jq '.provider == "local" and .color == "red" and (.color_hex | test("^#[0-9A-F]{6}$"))
		and .type == "jacket" and (.colors | length) >= 2 and .material == null'
}

@test "Ximilar tag: type, color, material, pattern from the tags; hex still computed here" {
	export XIMILAR_API_TOKEN=test-token
	url=$(street 1 u5/p.jpg)
	fake_config ximilar '{"objects": [{"name": "Upper", "bound_box": [0, 0, 10, 10], "prob": 0.9,
		"_tags": {"Subcategory": [{"name": "bomber", "prob": 0.8}], "Color": [{"name": "khaki", "prob": 0.9}],
		"Material": [{"name": "nylon", "prob": 0.6}], "Design": [{"name": "solid", "prob": 0.7}]}}]}'
	run --separate-stderr unde-ximilar tag <<<"{\"url\": \"$url\"}"
	assert_success
	assert_jq '.provider == "ximilar" and .type == "bomber" and .color == "khaki" and .material == "nylon"
		and .pattern == "solid" and (.color_hex | startswith("#"))'
}

@test "local search: a street photo of a catalog product finds it first, score above 0.85, others below" {
	url=$(street 5 u6/p.jpg)
	run --separate-stderr unde-ximilar search <<<"{\"crop_url\": \"$url\", \"top_k\": 5}"
	assert_success
	assert_jq '.provider == "local" and (.candidates | length) == 5 and .candidates[0].sku_id == "Z5"
		and .candidates[0].score > 0.85 and .candidates[1].score < .candidates[0].score
		and (.candidates[0].score - (1 - .candidates[0].distance) | fabs) < 0.001
		and (.candidates[0].image_urls[0] | endswith("/originals/zara/Z5/1.jpg"))
		and .candidates[0].metadata.brand == "zara" and .candidates[0].metadata.colour == "Pink"'
}

@test "local search: in_stock means stock in a store of the user's market (RECOGNITION_STOCK_COUNTRY, _CITY), not anywhere" {
	recog_stores
	pq "update products set availability = case sku when 'Z5' then '{\"7000\": [\"M\"]}' when 'Z4' then '{\"6643\": [\"S\"]}'
		when 'Z6' then '{\"8000\": [\"L\"]}' when 'Z7' then '{\"9999\": [\"M\"]}' else '{}' end::jsonb" >/dev/null
	url=$(street 5 u6/stock.jpg)
	stock() { # stock — "sku:in_stock" of every candidate, sorted
		unde-ximilar search <<<"{\"crop_url\": \"$url\", \"top_k\": 8}" 2>/dev/null |
			jq -r '[.candidates[] | "\(.sku_id):\(.metadata.in_stock)"] | sort | join(" ")'
	}
	# KZ by default: Almaty's mall (Z4), Astana's own store (Z6); not Dubai (Z5), not a store nobody knows (Z7)
	got=$(stock)
	assert_equal "$got" "Z0:false Z1:false Z2:false Z3:false Z4:true Z5:false Z6:true Z7:false"
	got=$(RECOGNITION_STOCK_CITY=astana stock)
	assert_equal "$got" "Z0:false Z1:false Z2:false Z3:false Z4:false Z5:false Z6:true Z7:false"
	got=$(RECOGNITION_STOCK_COUNTRY=AE stock)
	assert_equal "$got" "Z0:false Z1:false Z2:false Z3:false Z4:false Z5:true Z6:false Z7:false"
	# empty: any country (the stores still have to be known)
	got=$(RECOGNITION_STOCK_COUNTRY= stock)
	assert_equal "$got" "Z0:false Z1:false Z2:false Z3:false Z4:true Z5:true Z6:true Z7:false"
	pq "update products set availability = case when substr(sku, 2)::int % 2 = 0 then '{\"6643\": [\"M\"]}' else '{}' end::jsonb;
		delete from stores; delete from malls" >/dev/null
}

@test "every product of the catalog is found from its street photo (top 1)" {
	for i in 0 1 2 3 4 5 6 7; do
		url=$(street "$i" "u7/$i.jpg")
		got=$(unde-ximilar search <<<"{\"crop_url\": \"$url\", \"top_k\": 3}" 2>/dev/null | jq -r '.candidates[0].sku_id')
		[ "$got" = "Z$i" ] || fail "product $i: found $got"
	done
}

@test "Ximilar search: visualKNN's photos grouped by product, distances to scores" {
	export XIMILAR_API_TOKEN=test-token
	curl -fsS -X POST -H 'Authorization: Token test-token' -H 'collection-id: coll-1' -H 'Content-Type: application/json' \
		"$FAKE_XIMILAR_URL/similarity/products/v2/insert" -d '{"records": [
		{"_id": "zara-A1-1", "_url": "https://img.test/a1-1.jpg", "sku_id": "A1", "brand": "zara", "price": 10},
		{"_id": "zara-A1-2", "_url": "https://img.test/a1-2.jpg", "sku_id": "A1", "brand": "zara", "price": 10},
		{"_id": "zara-B2-1", "_url": "https://img.test/b2-1.jpg", "sku_id": "B2", "brand": "zara", "price": 20}]}' >/dev/null
	fake_config ximilar '{"distances": {"zara-A1-1": 0.1, "zara-A1-2": 0.2, "zara-B2-1": 0.6}}'
	url=$(street 1 u8/p.jpg)
	run --separate-stderr unde-ximilar search <<<"{\"crop_url\": \"$url\", \"top_k\": 5}"
	assert_success
	assert_jq '.provider == "ximilar" and (.candidates | map(.sku_id)) == ["A1", "B2"]
		and .candidates[0].score == 0.9 and .candidates[0].image_urls == ["https://img.test/a1-1.jpg", "https://img.test/a1-2.jpg"]
		and .candidates[1].score == 0.4 and .candidates[0].metadata.price == 10'
	run fake_requests ximilar /similarity/products/v2/visualKNN
	assert_jq '.[0].headers["collection-id"] == "coll-1" and (.[0].json.query_record._base64 | length) > 1000'
}

@test "bad records: no URL, a photo that is not one, a missing object; the stream goes on" {
	url=$(street 1 u9/p.jpg)
	printf 'not json\n{}\n{"url": "%s"}\n{"url": "%s"}\n' "$S3_ENDPOINT/unde-user-media/none.jpg" "$url" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-ximilar tag <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_json_line_count 1
	[[ $stderr == *photo_not_found* && $stderr == *missing_field* ]] || fail "$stderr"
}

@test "photos over HTTP: loopback, private and link-local addresses refused after DNS and on redirects, unless PHOTO_FETCH_ALLOW_NETS names them" {
	fake_start cdn cdn.py --host 0.0.0.0
	p=$FAKE_CDN_PORT
	printf '{"url": "%s"}\n' "http://127.0.0.1:$p/p/jpeg-300x400" "http://localhost:$p/p/jpeg-300x400" \
		"http://[::ffff:127.0.0.1]:$p/p/jpeg-300x400" "http://169.254.169.254/latest/meta-data/" \
		"http://10.0.0.1/p.jpg" "http://127.0.0.2:$p/p/jpeg-300x400" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-ximilar tag <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_json_line_count 0
	jq -Rne '[inputs | fromjson? | select(.level == "error") | .error] | length == 6 and all(.code == "photo_url_refused")
		and (map(.message | capture("a (?<k>[a-z-]+) address").k) == ["loopback", "loopback", "loopback", "link-local", "private", "loopback"])' \
		<<<"$stderr" >/dev/null || fail "$stderr"
	assert_equal "$(fake_requests cdn | jq length)" 0
	# the allow-list names one address: that one is fetched, a redirect from it to another is not
	export PHOTO_FETCH_ALLOW_NETS="127.0.0.2/32, 192.0.2.0/24"
	printf '{"url": "%s"}\n' "http://127.0.0.2:$p/p/jpeg-300x400" "http://127.0.0.2:$p/redirect-host/127.0.0.1/p/jpeg-300x400" \
		"http://localhost:$p/p/jpeg-300x400" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-ximilar tag <"$BATS_TEST_TMPDIR/in"
	assert_equal "$status" 65
	assert_json_line_count 1
	assert_jq '.color == "red" and .provider == "local"'
	jq -Rne '[inputs | fromjson? | select(.level == "error")] | length == 2 and all(.error.code == "photo_url_refused")
		and (.[0].error.message | contains("refused to connect to 127.0.0.1"))' <<<"$stderr" >/dev/null || fail "$stderr"
	assert_equal "$(fake_requests cdn | jq -c 'map(.path)')" '["/p/jpeg-300x400","/redirect-host/127.0.0.1/p/jpeg-300x400"]'
	PHOTO_FETCH_ALLOW_NETS="127.0.0.0/8 ::1" run --separate-stderr unde-ximilar tag <<<"{\"url\": \"http://localhost:$p/p/jpeg-300x400\"}"
	assert_success
	assert_jq '.color == "red"'
	PHOTO_FETCH_ALLOW_NETS=127.0.0.0/33 run --separate-stderr unde-ximilar tag <<<"{\"url\": \"http://127.0.0.1:$p/p/jpeg-300x400\"}"
	assert_equal "$status" 78
	assert_stderr_error_code invalid_config
	[[ $stderr == *PHOTO_FETCH_ALLOW_NETS* ]] || fail "$stderr"
	fake_stop cdn
}

@test "--help, --version, usage" {
	run unde-ximilar --help
	assert_success
	assert_output --partial 'detect|tag|search'
	run unde-ximilar detect --help
	assert_success
	run unde-ximilar --version
	assert_output --regexp '^unde-ximilar [0-9]'
	run unde-ximilar frobnicate
	assert_equal "$status" 64
}
