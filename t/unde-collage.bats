#!/usr/bin/env bats
# unde-collage: each product's originals joined left to right into one JPEG
# (libjpeg; libvips for PNG, WebP, CMYK), uploaded to a real S3-compatible store (spec §5, §17.3), and
# the whole pipeline end to end: fake Apify → staging → fake CDN → S3.

load lib/common
load lib/pg
load lib/moto
load lib/catalog

setup_file() {
	catalog_setup_file cdn apify
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_setup c cdn apify
}

# uploaded ITEMS-JQ… — products whose originals are in the store, their
# download lines on stdout. Each argument is one item's images as a jq array.
uploaded() {
	local i=0 imgs
	for imgs in "$@"; do
		i=$((i + 1))
		jq -nc --arg c "$CDN" --arg id "P$i" "{id: \$id, name: \"n\", brand: \"zara\", images: $imgs}"
	done | unde-apify --from - 2>/dev/null | unde-download 2>/dev/null
}

# pixel FILE X Y — "R G B" of the collage at X,Y
pixel() {
	vips getpoint "$1" "$2" "$3" | awk '{printf "%d %d %d\n", $1, $2, $3}'
}

@test "end to end: fake Apify → staging → fake CDN → S3 → collages of the expected size" {
	fake_config apify "{\"generate\": {\"count\": 3, \"cdn\": \"$CDN\", \"photos\": 3,
		\"spec\": \"jpeg-600x800\"}, \"polls\": 1}"
	export APIFY_API_URL=$FAKE_APIFY_URL APIFY_TOKEN=test-token APIFY_POLL_INTERVAL_MS=5
	run --separate-stderr bash -c 'unde-apify --brand zara | unde-download | unde-collage'
	assert_success
	assert_json_line_count 3
	assert_jq --arg u "$S3_ENDPOINT/$S3_BUCKET/collages/zara/" \
		'.image_status == "collage_ready" and (.collage_url | startswith($u)) and .collage_width == 1800
		 and .collage_height == 800 and (.image_urls | length) == 3 and .source == "apify_zara"'
	run sql "select image_status, collage_url like '%/collages/zara/' || external_id || '.jpg', claimed_by is null
		from raw_products order by id"
	assert_output $'collage_ready|t|t\ncollage_ready|t|t\ncollage_ready|t|t'
	d=$(unde_tmpdir)
	for id in $(sql "select external_id from raw_products"); do
		moto_aws s3 cp "s3://$S3_BUCKET/collages/zara/$id.jpg" "$d/$id.jpg" >/dev/null
		run vipsheader "$d/$id.jpg"
		assert_output --partial '1800x800 uchar, 3 bands, srgb, jpegload'
	done
	run moto_aws s3api head-object --bucket "$S3_BUCKET" --key "collages/zara/$id.jpg"
	assert_jq '.ContentType == "image/jpeg"'
	[ "$(sql "select count(*) from scraper_logs where status = 'success' and records_new = 3")" = 1 ]
}

@test "re-running the whole pipeline changes nothing" {
	fake_config apify "{\"generate\": {\"count\": 2, \"cdn\": \"$CDN\", \"photos\": 2,
		\"spec\": \"jpeg-300x400\"}, \"polls\": 0}"
	export APIFY_API_URL=$FAKE_APIFY_URL APIFY_TOKEN=test-token APIFY_POLL_INTERVAL_MS=5
	unde-apify --brand zara 2>/dev/null | unde-download 2>/dev/null | unde-collage >/dev/null 2>&1
	q="select id, source, external_id, image_status, image_urls, collage_url, updated_at from raw_products order by id"
	before=$(sql "$q")
	etags=$(for id in ZAR000001 ZAR000002; do moto_aws s3api head-object --bucket "$S3_BUCKET" \
		--key "collages/zara/$id.jpg" | jq -r '.ETag + .LastModified'; done)
	photos=$(fake_requests cdn /p/ | jq length)
	run --separate-stderr bash -c 'unde-apify --brand zara | unde-download | unde-collage'
	assert_success
	assert_json_line_count 2
	assert_jq '.image_status == "collage_ready" and .change == "unchanged"'
	assert_equal "$(sql "$q")" "$before"
	assert_equal "$(fake_requests cdn /p/ | jq length)" "$photos"
	assert_equal "$(for id in ZAR000001 ZAR000002; do moto_aws s3api head-object --bucket "$S3_BUCKET" \
		--key "collages/zara/$id.jpg" | jq -r '.ETag + .LastModified'; done)" "$etags"
}

@test "mixed originals: one height, EXIF orientation applied, CMYK in colour, alpha on white, no metadata" {
	uploaded '["\($c)/p/jpeg-1200x1600/a", "\($c)/p/png-800x600-alpha/b", "\($c)/p/jpeg-600x800-cmyk/c",
		"\($c)/p/jpeg-1600x1200-exif6/d", "\($c)/p/webp-640x480/e"]' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_success
	# heights 1600 800 600 1600 480 (the EXIF-rotated one is portrait): the
	# median, 800, is the height; at 800 the parts are 600 800 600 600 640 =
	# 3240 wide, so all go down by 2048/3240 to 505 high:
	# 379 + 506 (379 high) + 379 + 379 + 405 (303 high), the low ones centred on white
	assert_jq '.collage_width == 2048 and .collage_height == 505'
	f=$BATS_TEST_TMPDIR/c.jpg
	moto_aws s3 cp "s3://$S3_BUCKET/collages/zara/P1.jpg" "$f" >/dev/null
	is_red() { set -- $(pixel "$f" "$1" "$2"); [ "$1" -gt 150 ] && [ "$2" -lt 90 ] && [ "$3" -lt 90 ]; }
	is_white() { set -- $(pixel "$f" "$1" "$2"); [ "$1" -gt 245 ] && [ "$2" -gt 245 ] && [ "$3" -gt 245 ]; }
	is_red 10 10 || fail "JPEG part is not red: $(pixel "$f" 10 10)"
	is_white 400 30 || fail "white above the lower PNG part: $(pixel "$f" 400 30)"
	is_white 400 150 || fail "transparent PNG part is not white: $(pixel "$f" 400 150)"
	is_red 400 400 || fail "opaque PNG part is not red: $(pixel "$f" 400 400)"
	is_white 400 480 || fail "white below the lower PNG part: $(pixel "$f" 400 480)"
	is_red 900 200 || fail "CMYK part lost its colour: $(pixel "$f" 900 200)"
	# EXIF 6: the stored image's left (red) half is now on top
	is_red 1300 10 || fail "EXIF-rotated part: top is not red: $(pixel "$f" 1300 10)"
	! is_red 1300 400 || fail "EXIF-rotated part was not turned upright"
	is_red 1700 250 || fail "WebP part is not red: $(pixel "$f" 1700 250)"
	is_white 1700 50 || fail "white above the WebP part: $(pixel "$f" 1700 50)"
	run vipsheader -f exif-data "$f"
	assert_failure
	run vipsheader -f icc-profile-data "$f"
	assert_failure
}

@test "the collage stays within COLLAGE_MAX_WIDTH, at COLLAGE_QUALITY" {
	uploaded '["\($c)/p/jpeg-1200x1600/a", "\($c)/p/jpeg-1200x1600/b"]' '["\($c)/p/jpeg-1200x1600/c", "\($c)/p/jpeg-1200x1600/d"]' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env COLLAGE_MAX_WIDTH=500 COLLAGE_QUALITY=95 unde-collage < <(head -1 "$BATS_TEST_TMPDIR/in")
	assert_success
	assert_jq '.collage_width == 500 and .collage_height == 333'
	run --separate-stderr env COLLAGE_MAX_WIDTH=500 COLLAGE_QUALITY=20 unde-collage < <(tail -1 "$BATS_TEST_TMPDIR/in")
	assert_success
	hi=$(moto_aws s3api head-object --bucket "$S3_BUCKET" --key collages/zara/P1.jpg | jq .ContentLength)
	lo=$(moto_aws s3api head-object --bucket "$S3_BUCKET" --key collages/zara/P2.jpg | jq .ContentLength)
	[ "$lo" -lt "$hi" ] || fail "Q=20 ($lo bytes) is not smaller than Q=95 ($hi bytes)"
}

@test "--pending takes 'uploaded' products, at most --limit" {
	uploaded '["\($c)/p/jpeg-64x64/a"]' '["\($c)/p/jpeg-64x64/b"]' '["\($c)/p/jpeg-64x64/c"]' >/dev/null
	run --separate-stderr unde-collage --pending --limit 2
	assert_success
	assert_json_line_count 2
	run sql "select image_status, count(*) from raw_products group by 1 order by 1"
	assert_output $'collage_ready|2\nuploaded|1'
}

@test "an original missing from the store: error status and message; --retry-failed redoes it" {
	uploaded '["\($c)/p/jpeg-64x64/a", "\($c)/p/jpeg-64x64/b"]' >"$BATS_TEST_TMPDIR/in"
	moto_aws s3 rm "s3://$S3_BUCKET/originals/zara/P1/2.jpg" >/dev/null
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_output ''
	assert_stderr_error_code original_missing
	run sql "select image_status, error_message like 'original_missing:%', collage_url is null, claimed_by is null
		from raw_products"
	assert_output 'error|t|t|t'
	# the photo comes back; the hourly retry makes the collage
	curl -fsS "$CDN/p/jpeg-64x64/b" | moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P1/2.jpg" >/dev/null
	run --separate-stderr unde-collage --retry-failed
	assert_success
	assert_jq '.external_id == "P1" and .image_status == "collage_ready"'
	run sql "select image_status, error_message is null from raw_products"
	assert_output 'collage_ready|t'
}

@test "a corrupt or truncated original fails the product, and nothing is uploaded" {
	uploaded '["\($c)/p/jpeg-600x800/a"]' '["\($c)/p/jpeg-600x800/b"]' >"$BATS_TEST_TMPDIR/in"
	echo 'this is not a photo' | moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P1/1.jpg" >/dev/null
	curl -fsS "$CDN/truncated/jpeg-600x800/b" | moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P2/1.jpg" >/dev/null
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_output ''
	assert_stderr_error_code bad_image
	run sql "select image_status, count(*) from raw_products group by 1"
	assert_output 'error|2'
	run moto_aws s3api head-object --bucket "$S3_BUCKET" --key collages/zara/P2.jpg
	assert_failure
}

@test "a product whose photos are not uploaded yet is refused and its status left alone" {
	catalog_items 1 zara "$CDN" jpeg-64x64 1 | unde-apify --from - 2>/dev/null >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_stderr_error_code not_uploaded
	run sql "select image_status, claimed_by is null from raw_products"
	assert_output 'pending|t'
}

@test "a collage already made is passed on as it is" {
	uploaded '["\($c)/p/jpeg-64x64/a"]' >"$BATS_TEST_TMPDIR/in"
	unde-collage <"$BATS_TEST_TMPDIR/in" >/dev/null 2>&1
	before=$(sql "select collage_url, updated_at from raw_products")
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_jq '.image_status == "collage_ready" and (.collage_url | endswith("/collages/zara/P1.jpg"))
		and .collage_width == 64 and .collage_height == 64'
	assert_equal "$(sql "select collage_url, updated_at from raw_products")" "$before"
	run sql "select collage_width, collage_height from raw_products"
	assert_output '64|64'
}

@test "one tiny photo does not shrink the collage: the median height, lower parts centred on white" {
	uploaded '["\($c)/p/jpeg-1200x1600/a", "\($c)/p/jpeg-1x1/b"]' \
		'["\($c)/p/jpeg-1200x1600/c", "\($c)/p/jpeg-1200x1600/d", "\($c)/p/jpeg-1200x1600/e", "\($c)/p/jpeg-100x100/f"]' \
		>"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_success
	# 1600 high (not 1): the photo as it is, the pixel centred beside it
	assert_jq 'select(.external_id == "P1") | .collage_width == 1201 and .collage_height == 1600'
	# the median is 1600: 3 x 1200 + 100 = 3700 wide, all lowered by 2048/3700
	# to 885 high (not 100): 664 x 3 + 55 (55 high, centred)
	assert_jq 'select(.external_id == "P2") | .collage_width == 2047 and .collage_height == 885'
	f=$BATS_TEST_TMPDIR/c.jpg
	moto_aws s3 cp "s3://$S3_BUCKET/collages/zara/P2.jpg" "$f" >/dev/null
	set -- $(pixel "$f" 2020 100)
	[ "$1" -gt 245 ] && [ "$2" -gt 245 ] && [ "$3" -gt 245 ] || fail "no white above the swatch: $*"
	set -- $(pixel "$f" 1995 442)
	[ "$1" -gt 150 ] && [ "$2" -lt 90 ] || fail "the swatch is not in the middle: $*"
	set -- $(pixel "$f" 10 870)
	[ "$1" -gt 150 ] && [ "$2" -lt 90 ] || fail "the photos do not fill the height: $*"
}

@test "a JPEG cut inside its main image is refused, its EXIF thumbnail or an EOI after the cut notwithstanding" {
	uploaded '["\($c)/p/jpeg-64x64/a"]' '["\($c)/p/jpeg-64x64/b"]' '["\($c)/p/jpeg-64x64/c"]' >"$BATS_TEST_TMPDIR/in"
	curl -fsS "$CDN/cutmain/1500/jpeg-1200x1600-thumb/x" |
		moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P1/1.jpg" >/dev/null
	curl -fsS "$CDN/cuteoi/1500/jpeg-1200x1600/x" |
		moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P2/1.jpg" >/dev/null
	curl -fsS "$CDN/p/jpeg-600x800-trailer/x" |
		moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P3/1.jpg" >/dev/null
	run --separate-stderr unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	# a whole JPEG with a trailer after its EOI is read
	assert_json_line_count 1
	assert_jq '.external_id == "P3" and .collage_width == 600 and .collage_height == 800'
	run sql "select external_id, image_status, split_part(error_message, ':', 1), collage_url is null
		from raw_products order by id"
	assert_output $'P1|error|bad_image|t\nP2|error|bad_image|t\nP3|collage_ready||f'
	[[ $stderr == *'truncated JPEG'* ]]
	[[ $stderr == *'premature end of data segment'* ]]
	run moto_aws s3 ls "s3://$S3_BUCKET/collages/zara/"
	[[ $output != *P1.jpg* && $output != *P2.jpg* ]]
}

@test "--retry-failed skips unreadable originals unless --include-permanent; BATCH_SIZE is the default --limit" {
	uploaded '["\($c)/p/jpeg-64x64/a"]' '["\($c)/p/jpeg-64x64/b"]' '["\($c)/p/jpeg-64x64/c"]' >"$BATS_TEST_TMPDIR/in"
	echo 'this is not a photo' | moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P1/1.jpg" >/dev/null
	moto_aws s3 rm "s3://$S3_BUCKET/originals/zara/P2/1.jpg" >/dev/null
	run --separate-stderr env BATCH_SIZE=2 unde-collage --pending
	assert_failure 65
	run sql "select external_id, image_status, error_permanent from raw_products order by id"
	assert_output $'P1|error|t\nP2|error|f\nP3|uploaded|f'
	curl -fsS "$CDN/p/jpeg-64x64/b" | moto_aws s3 cp - "s3://$S3_BUCKET/originals/zara/P2/1.jpg" >/dev/null
	run --separate-stderr unde-collage --retry-failed
	assert_success
	assert_json_line_count 1
	assert_jq '.external_id == "P2" and .image_status == "collage_ready"'
	run --separate-stderr unde-collage --retry-failed --include-permanent
	assert_failure 65
	assert_stderr_error_code bad_image
	run --separate-stderr env BATCH_SIZE=1 COLLAGE_BATCH_SIZE=5 unde-collage --pending
	assert_success
	assert_json_line_count 1
}

@test "a run killed midway leaves every product either collage_ready or untouched" {
	imgs='["\($c)/p/jpeg-1200x1600/a", "\($c)/p/jpeg-1200x1600/b", "\($c)/p/jpeg-1200x1600/c", "\($c)/p/jpeg-1200x1600/d"]'
	args=()
	for i in $(seq 30); do args+=("$imgs"); done
	uploaded "${args[@]}" >/dev/null
	unde-collage --pending --claim-ttl 1 >/dev/null 2>&1 &
	pid=$!
	for i in $(seq 400); do
		[ "$(sql "select count(*) from raw_products where image_status = 'collage_ready'")" -ge 1 ] && break
		sleep 0.02
	done
	kill -KILL "$pid"
	wait "$pid" || true
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded'")" -ge 1 ] ||
		fail "the run finished before it was killed"
	run sql "select count(*) from raw_products where not (
		(image_status = 'collage_ready' and collage_url is not null)
		or (image_status = 'uploaded' and collage_url is null))"
	assert_output 0
	for i in $(seq 100); do
		[ "$(sql "select count(*) from raw_products where claimed_until > now()")" = 0 ] && break
		sleep 0.05
	done
	run --separate-stderr unde-collage --pending
	assert_success
	[ "$(sql "select count(*) from raw_products where image_status = 'collage_ready'")" = 30 ]
}

@test "concurrent --pending runs never make the same collage twice" {
	args=()
	for i in $(seq 12); do args+=('["\($c)/p/jpeg-600x800/a", "\($c)/p/jpeg-600x800/b"]'); done
	uploaded "${args[@]}" >/dev/null
	d=$(unde_tmpdir)
	pids=()
	for r in 1 2 3; do
		unde-collage --pending --limit 5 >"$d/$r" 2>/dev/null &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	cat "$d"/[1-3] >"$d/all"
	assert_equal "$(wc -l <"$d/all")" 12
	assert_equal "$(jq .id "$d/all" | sort | uniq -d)" ""
}

@test "a wrong S3 secret: products marked error, none collage_ready" {
	uploaded '["\($c)/p/jpeg-64x64/a"]' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env S3_SECRET_KEY=wrong unde-collage <"$BATS_TEST_TMPDIR/in"
	assert_failure 69
	assert_stderr_error_code storage_error
	[ "$(sql 'select image_status from raw_products')" = error ]
}

@test "with S3_ENDPOINT=file:// the whole pipeline runs locally" {
	d=$(unde_tmpdir)
	export S3_ENDPOINT="file://$d"
	unset S3_ACCESS_KEY S3_SECRET_KEY
	run --separate-stderr bash -c "jq -nc --arg c '$CDN' '{id: \"L1\", name: \"n\", brand: \"oysho\",
		images: [\"\(\$c)/p/png-300x400/a\", \"\(\$c)/p/webp-300x400/b\"]}' | unde-apify --from - | unde-download | unde-collage"
	assert_success
	assert_jq --arg u "file://$d/$S3_BUCKET/collages/oysho/L1.jpg" \
		'.provider == "local" and .collage_url == $u and .collage_width == 600 and .collage_height == 400'
	run vipsheader "$d/$S3_BUCKET/collages/oysho/L1.jpg"
	assert_output --partial '600x400 uchar, 3 bands, srgb, jpegload'
	run find "$d" -name '.*'
	assert_output ''
}

@test "the §19 metrics are written: queue size and processing errors" {
	d=$(unde_tmpdir)
	uploaded '["\($c)/p/jpeg-64x64/a"]' '["\($c)/p/jpeg-64x64/b"]' '["\($c)/p/jpeg-64x64/c"]' >/dev/null
	moto_aws s3 rm "s3://$S3_BUCKET/originals/zara/P2/1.jpg" >/dev/null
	UNDE_METRICS_DIR=$d unde-collage --pending --limit 2 >/dev/null 2>&1 || true
	grep -qx 'collage_processing_errors 1' "$d/unde-collage.prom"
	grep -qx 'collage_processed 1' "$d/unde-collage.prom"
	grep -qx 'collage_queue_size 1' "$d/unde-collage.prom"
}

@test "configuration errors name the variable; --help and --version work" {
	run --separate-stderr env COLLAGE_QUALITY=101 unde-collage </dev/null
	assert_failure 78
	[[ $stderr == *COLLAGE_QUALITY* ]]
	run --separate-stderr env -u STAGING_DB_URL unde-collage </dev/null
	assert_failure 78
	[[ $stderr == *STAGING_DB_URL* ]]
	run unde-collage --help
	assert_success
	assert_output --partial '--retry-failed'
	assert_output --partial 'default 100'
	run unde-collage --version
	assert_output --regexp '^unde-collage [0-9]'
}

# The harness itself (t/lib/moto.bash), here where its setup once failed
# under load: each step that waits on the server is bounded and named.
@test "moto_start: a server that never answers fails within MOTO_START_TIMEOUT, naming the step" {
	d=$(unde_tmpdir)
	printf '%s\n' '#!/bin/sh' 'exec python3 -c "import socket, sys, time
s = socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(8); time.sleep(300)" "$4"' >"$d/mute"
	chmod +x "$d/mute"
	start=$SECONDS
	run bash -c "source '$BATS_TEST_DIRNAME/lib/moto.bash'; MOTO_SERVER='$d/mute' MOTO_START_TIMEOUT=2 moto_start"
	assert_failure
	[[ $output == *'step "server start"'* ]] || fail "$output"
	[ $((SECONDS - start)) -lt 60 ] || fail "took $((SECONDS - start)) s"
}

@test "moto_start: a failed IAM bootstrap call is named, with what it said" {
	d=$(unde_tmpdir)
	printf '%s\n' '#!/bin/sh' 'case "$*" in *create-access-key*) echo "boom: refused" >&2; exit 254;; esac' \
		'exec /usr/bin/aws "$@"' >"$d/aws"
	chmod +x "$d/aws"
	run bash -c "source '$BATS_TEST_DIRNAME/lib/moto.bash'; MOTO_AWS='$d/aws' moto_start"
	assert_failure
	[[ $output == *'step "iam create-access-key" failed (exit 254)'* ]] || fail "$output"
	[[ $output == *'boom: refused'* ]]
}
