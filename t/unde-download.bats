#!/usr/bin/env bats
# unde-download: product photos from a (fake) brand CDN into a real
# S3-compatible store that checks signatures, one UPDATE per product
# (spec §3, §17.1).

load lib/common
load lib/pg
load lib/moto
load lib/catalog

setup_file() {
	catalog_setup_file cdn
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_setup t cdn
}

# seed N [BRAND] [SPEC] [PHOTOS] — N pending products in staging, their lines on stdout
seed() {
	catalog_items "$1" "${2:-zara}" "$CDN" "${3:-jpeg-600x800}" "${4:-3}" |
		unde-apify --from - 2>/dev/null
}

# objects PREFIX — the keys under PREFIX in the bucket, one per line. (The
# whole bucket is listed and filtered here: moto's signature check refuses
# any client's ListObjects with a prefix holding '/'.)
objects() {
	moto_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --output json |
		jq -r --arg p "$1" '.Contents // [] | .[].Key | select(startswith($p))' | sort
}

@test "photos go to originals/{brand}/{external_id}/{n}.jpg and the product is marked uploaded" {
	seed 2 >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_json_line_count 2
	assert_jq --arg e "$S3_ENDPOINT/$S3_BUCKET/originals/zara/ZARA1/" \
		'select(.external_id == "ZARA1") | .image_status == "uploaded" and (.image_urls | length) == 3
		 and .image_urls[0] == ($e + "1.jpg") and .image_urls[2] == ($e + "3.jpg") and .provider == "s3"
		 and .name == "zara item 1"'
	run objects originals/zara/
	assert_output $'originals/zara/ZARA1/1.jpg\noriginals/zara/ZARA1/2.jpg\noriginals/zara/ZARA1/3.jpg\noriginals/zara/ZARA2/1.jpg\noriginals/zara/ZARA2/2.jpg\noriginals/zara/ZARA2/3.jpg'
	# the stored bytes are the CDN's, read back with another client
	curl -fsS "$CDN/p/jpeg-600x800/zara/ZARA1/2.jpg" >"$BATS_TEST_TMPDIR/cdn.jpg"
	moto_aws s3 cp s3://$S3_BUCKET/originals/zara/ZARA1/2.jpg "$BATS_TEST_TMPDIR/s3.jpg" >/dev/null
	cmp "$BATS_TEST_TMPDIR/cdn.jpg" "$BATS_TEST_TMPDIR/s3.jpg"
	run sql "select image_status, jsonb_array_length(image_urls), error_message is null, claimed_by is null
		from raw_products order by id"
	assert_output $'uploaded|3|t|t\nuploaded|3|t|t'
}

@test "at most five photos per product are taken" {
	seed 1 zara jpeg-64x64 7 | unde-download >/dev/null 2>&1
	[ "$(objects originals/zara/ZARA1/ | wc -l)" = 5 ]
	[ "$(sql 'select jsonb_array_length(image_urls) from raw_products')" = 5 ]
	run fake_requests cdn /p/
	assert_jq 'length == 5'
}

@test "--pending takes pending products from staging, at most --limit of them" {
	seed 5 >/dev/null
	run --separate-stderr unde-download --pending --limit 3
	assert_success
	assert_json_line_count 3
	run sql "select image_status, count(*) from raw_products group by 1 order by 1"
	assert_output $'pending|2\nuploaded|3'
	run --separate-stderr unde-download --pending
	assert_json_line_count 2
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded'")" = 5 ]
}

@test "JPEG, PNG, WebP, CMYK, alpha and EXIF-rotated photos are stored as received, typed" {
	{
		catalog_items 1 zara "$CDN" jpeg-600x800-cmyk 1
		catalog_items 1 oysho "$CDN" png-300x400-alpha 1
		catalog_items 1 bershka "$CDN" webp-400x300 1
		catalog_items 1 mango "$CDN" jpeg-800x600-exif6 1
	} | unde-apify --from - 2>/dev/null | unde-download >/dev/null
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded'")" = 4 ]
	run moto_aws s3api head-object --bucket "$S3_BUCKET" --key originals/oysho/OYSHO1/1.jpg
	assert_jq '.ContentType == "image/png"'
	run moto_aws s3api head-object --bucket "$S3_BUCKET" --key originals/bershka/BERSHKA1/1.jpg
	assert_jq '.ContentType == "image/webp"'
	run moto_aws s3api head-object --bucket "$S3_BUCKET" --key originals/mango/MANGO1/1.jpg
	assert_jq '.ContentType == "image/jpeg"'
	curl -fsS "$CDN/p/jpeg-600x800-cmyk/zara/ZARA1/1.jpg" | cmp - <(moto_aws s3 cp s3://$S3_BUCKET/originals/zara/ZARA1/1.jpg -)
}

@test "one missing photo fails the whole product: error status, message, nothing uploaded" {
	jq -nc --arg c "$CDN" '{id: "M1", name: "n", brand: "zara",
		images: ["\($c)/p/jpeg-64x64/a/1.jpg", "\($c)/missing/a/2.jpg", "\($c)/p/jpeg-64x64/a/3.jpg"]}' |
		unde-apify --from - 2>/dev/null >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_output ''
	assert_stderr_error_code photo_not_found
	# the error line carries the record whole, so it can be re-run
	echo "$stderr" | jq -se 'map(select(.level == "error" and .record.external_id == "M1")) | length == 1' >/dev/null
	run sql "select image_status, error_message like '%photo 2%HTTP 404%', image_urls is null,
		claimed_by is null from raw_products"
	assert_output 'error|t|t|t'
	run objects originals/zara/M1/
	assert_output ''
}

@test "a block page, an empty body, a truncated JPEG and a cut transfer are errors, not uploads" {
	for kind in blocked/x empty/x truncated/jpeg-600x800 cut/jpeg-600x800; do
		jq -nc --arg c "$CDN" --arg k "$kind" --arg id "${kind%%/*}" \
			'{id: $id, name: "n", brand: "zara", images: ["\($c)/\($k)/\($id)/1.jpg"]}'
	done | unde-apify --from - 2>/dev/null >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env MAX_RETRIES=1 unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure
	assert_output ''
	run sql "select external_id || ': ' || split_part(error_message, ':', 1) from raw_products
		where image_status = 'error' order by external_id"
	assert_output $'blocked: not_an_image\ncut: photo_unreachable\nempty: not_an_image\ntruncated: not_an_image'
	[[ $stderr == *'HTML page instead of a photo'* ]]
	[[ $stderr == *'truncated JPEG'* ]]
	[[ $stderr == *'empty body'* ]]
	run objects originals/
	assert_output ''
}

# one ID URL… — a pending product with these photo URLs, its line on stdout
one() {
	local id=$1
	shift
	jq -nc --arg id "$id" '{id: $id, name: "n", brand: "zara", images: $ARGS.positional}' --args "$@" |
		unde-apify --from - 2>/dev/null
}

@test "a JPEG cut inside its main image is refused although its EXIF thumbnail's end marker is near the end" {
	# 1200x1600 with a 160x120 thumbnail in its EXIF block, cut 1500 bytes
	# into the main image's data: the thumbnail's EOI is in the last 4 KiB
	one T1 "$CDN/cutmain/1500/jpeg-1200x1600-thumb/T1/1.jpg" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_stderr_error_code not_an_image
	[[ $stderr == *'truncated JPEG'* ]]
	run sql "select image_status, split_part(error_message, ':', 1) from raw_products"
	assert_output 'error|not_an_image'
	run objects originals/
	assert_output ''
}

@test "a whole JPEG with data after its end-of-image marker, or with an EXIF thumbnail, is accepted" {
	one T1 "$CDN/p/jpeg-600x800-trailer/T1/1.jpg" "$CDN/p/jpeg-1200x1600-thumb/T1/2.jpg" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_jq '.image_status == "uploaded" and (.image_urls | length) == 2'
	curl -fsS "$CDN/p/jpeg-600x800-trailer/T1/1.jpg" >"$BATS_TEST_TMPDIR/cdn.jpg"
	moto_aws s3 cp "s3://$S3_BUCKET/originals/zara/T1/1.jpg" "$BATS_TEST_TMPDIR/s3.jpg" >/dev/null
	cmp "$BATS_TEST_TMPDIR/cdn.jpg" "$BATS_TEST_TMPDIR/s3.jpg"
}

@test "redirects are followed up to five hops, over http(s) only" {
	one R1 "$CDN/redirect/2/p/jpeg-64x64/R1/1.jpg" >"$BATS_TEST_TMPDIR/in"
	one R2 "$CDN/redirect/9/p/jpeg-64x64/R2/1.jpg" >>"$BATS_TEST_TMPDIR/in"
	one R3 "$CDN/redirect-file/R3/1.jpg" >>"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env MAX_RETRIES=0 unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure
	assert_json_line_count 1
	assert_jq '.external_id == "R1" and .image_status == "uploaded"'
	run sql "select external_id, image_status, error_message like '%redirect%' from raw_products order by id"
	assert_output $'R1|uploaded|\nR2|error|t\nR3|error|t'
	run sql "select error_message from raw_products where external_id = 'R3'"
	[[ $output == *"Unsupported protocol"* ]] || fail "R3: $output"
	[[ $output != *root:* ]]
	curl -fsS "$CDN/p/jpeg-64x64/R1/1.jpg" >"$BATS_TEST_TMPDIR/cdn.jpg"
	moto_aws s3 cp "s3://$S3_BUCKET/originals/zara/R1/1.jpg" "$BATS_TEST_TMPDIR/s3.jpg" >/dev/null
	cmp "$BATS_TEST_TMPDIR/cdn.jpg" "$BATS_TEST_TMPDIR/s3.jpg"
}

@test "file:// photos are read under DOWNLOAD_FILE_ROOT only, and anything outside it is refused" {
	local d=$BATS_TEST_TMPDIR/photos
	mkdir -p "$d/zara" "$BATS_TEST_TMPDIR/outside"
	curl -fsS "$CDN/p/jpeg-300x400/zara/L1/1.jpg" >"$d/zara/1.jpg"
	cp "$d/zara/1.jpg" "$d/zara/2 two.jpg"
	cp "$d/zara/1.jpg" "$BATS_TEST_TMPDIR/outside/x.jpg"
	ln -s "$BATS_TEST_TMPDIR/outside/x.jpg" "$d/zara/link.jpg"
	item() { jq -nc --arg id "$1" --argjson im "$2" \
		'{id: $id, name: "local", brand: "zara", price: 10, currency: "KZT", images: $im}'; }
	{
		item L1 "[\"file://$d/zara/1.jpg\", \"file://$d/zara/2%20two.jpg\"]"
		item L2 "[\"file://$d/zara/link.jpg\"]"
		item L3 "[\"file://$d/zara/nothere.jpg\"]"
	} | unde-apify --from - 2>/dev/null >"$BATS_TEST_TMPDIR/in"
	# without the root, a file:// URL is not a photo at all
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure
	[[ $stderr == *"file:// ones need DOWNLOAD_FILE_ROOT"* ]]
	sql "update raw_products set image_status = 'pending', error_message = null, error_permanent = false"
	DOWNLOAD_FILE_ROOT=$d run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_jq 'select(.external_id == "L1") | .image_status == "uploaded" and (.image_urls | length) == 2'
	moto_aws s3 cp s3://$S3_BUCKET/originals/zara/L1/2.jpg "$BATS_TEST_TMPDIR/back.jpg" >/dev/null
	cmp "$d/zara/2 two.jpg" "$BATS_TEST_TMPDIR/back.jpg"
	# a symlink out of the root is 403, a missing file 404: both permanent
	run sql "select external_id, image_status, error_permanent, error_message like '%HTTP 403%', error_message like '%HTTP 404%'
		from raw_products where external_id in ('L2', 'L3') order by external_id"
	assert_output $'L2|error|t|t|f\nL3|error|t|f|t'
	run objects originals/zara/L2/
	assert_output ''
}

@test "a signed photo URL's query string is neither logged nor stored in the error message" {
	one Q1 "$CDN/missing/Q1/1.jpg?X-Amz-Signature=SECRETSIG&token=SECRETTOKEN" >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 65
	assert_stderr_error_code photo_not_found
	[[ $stderr == *"/missing/Q1/1.jpg"* ]] || fail "the URL's path should be named"
	# the record itself (the error line's "record") holds the URL as given;
	# the message and the log lines do not
	echo "$stderr" | jq -c 'del(.record)' | grep -c SECRET && fail "a token reached the log"
	run sql "select error_message like '%SECRET%', error_message like '%/missing/Q1/1.jpg%' from raw_products"
	assert_output 'f|t'
}

@test "permanent failures (404, not an image) are skipped by --retry-failed unless --include-permanent" {
	one P1 "$CDN/missing/P1/1.jpg" >"$BATS_TEST_TMPDIR/in"
	one P2 "$CDN/p/jpeg-64x64/P2/1.jpg" >>"$BATS_TEST_TMPDIR/in"
	one P3 "$CDN/blocked/P3/1.jpg" >>"$BATS_TEST_TMPDIR/in"
	fake_fail cdn '{"mode": "500", "path": "/p/"}'
	run --separate-stderr env MAX_RETRIES=0 unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure
	run sql "select external_id, image_status, error_permanent from raw_products order by id"
	assert_output $'P1|error|t\nP2|error|f\nP3|error|f'
	fake_reset cdn
	# the 500 and the bot wall are tried again; the 404 is not
	run --separate-stderr env MAX_RETRIES=0 unde-download --retry-failed
	assert_failure
	assert_jq '.external_id == "P2" and .image_status == "uploaded"'
	[ "$(echo "$stderr" | jq -s 'map(select(.level == "error") | .record.external_id) | sort == ["P3"]')" = true ]
	run sql "select count(*) from raw_products where external_id = 'P1' and claimed_by is null and image_status = 'error'"
	assert_output 1
	[ "$(fake_requests cdn /missing/ | jq length)" = 0 ]
	run --separate-stderr env MAX_RETRIES=0 unde-download --retry-failed --include-permanent
	assert_failure
	[ "$(echo "$stderr" | jq -s '[.[] | select(.level == "error") | .record.external_id] | sort == ["P1", "P3"]')" = true ]
	[ "$(fake_requests cdn /missing/ | jq length)" = 1 ]
}

@test "BATCH_SIZE is the default --limit of --pending; --limit overrides it" {
	seed 3 zara jpeg-64x64 1 >/dev/null
	run --separate-stderr env BATCH_SIZE=2 unde-download --pending
	assert_success
	assert_json_line_count 2
	sql "update raw_products set image_status = 'pending', image_urls = null"
	run --separate-stderr env BATCH_SIZE=2 DOWNLOAD_BATCH_SIZE=1 unde-download --pending
	assert_success
	assert_json_line_count 1
	sql "update raw_products set image_status = 'pending', image_urls = null"
	run --separate-stderr env BATCH_SIZE=1 unde-download --pending --lim 3
	assert_success
	assert_json_line_count 3
}

@test "a 429 with Retry-After is waited out and the product is uploaded" {
	seed 1 zara jpeg-64x64 2 >"$BATS_TEST_TMPDIR/in"
	fake_fail cdn '{"mode": "429", "retry_after": "1", "path": "/p/", "count": 1}'
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_jq '.image_status == "uploaded"'
	run fake_requests cdn /p/
	assert_jq 'length == 3 and (map(select(.status == 429)) | length) == 1'
}

@test "a photo slower than DOWNLOAD_TIMEOUT fails its product as a timeout (exit 75)" {
	jq -nc --arg c "$CDN" '{id: "S1", name: "n", brand: "zara", images: ["\($c)/slow/5000/jpeg-64x64/1.jpg"]}' |
		unde-apify --from - 2>/dev/null >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env DOWNLOAD_TIMEOUT=1 MAX_RETRIES=0 unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 75
	assert_stderr_error_code photo_timeout
	[ "$(sql 'select image_status from raw_products')" = error ]
}

@test "--retry-failed takes failed downloads again, and leaves collage failures alone" {
	seed 2 zara jpeg-64x64 1 >/dev/null
	sql "update raw_products set image_status = 'error', error_message = 'earlier' where external_id = 'ZARA1';
	     update raw_products set image_status = 'error', image_urls = '[\"x\"]' where external_id = 'ZARA2'"
	run --separate-stderr unde-download --retry-failed
	assert_success
	assert_json_line_count 1
	assert_jq '.external_id == "ZARA1" and .image_status == "uploaded"'
	run sql "select external_id, image_status, coalesce(error_message, '-') from raw_products order by id"
	assert_output $'ZARA1|uploaded|-\nZARA2|error|-'
}

@test "re-running changes nothing: uploaded products pass through without being fetched again" {
	seed 2 zara jpeg-64x64 2 >"$BATS_TEST_TMPDIR/in"
	unde-download <"$BATS_TEST_TMPDIR/in" >/dev/null 2>&1
	before=$(sql "select id, image_status, image_urls, updated_at from raw_products order by id")
	fetched=$(fake_requests cdn /p/ | jq length)
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_json_line_count 2
	assert_jq '.image_status == "uploaded" and (.image_urls | length) == 2'
	assert_equal "$(fake_requests cdn /p/ | jq length)" "$fetched"
	assert_equal "$(sql "select id, image_status, image_urls, updated_at from raw_products order by id")" "$before"
	# nor does a second --pending run find anything to do
	run --separate-stderr unde-download --pending
	assert_success
	assert_output ''
}

@test "a second --pending run skips the products a running run has claimed" {
	seed 12 zara jpeg-64x64 2 >/dev/null
	fake_config cdn '{"latency_ms": 150}'
	d=$(unde_tmpdir)
	CONCURRENT_DOWNLOADS=1 unde-download --pending --limit 6 >"$d/a" 2>"$d/a.err" &
	a=$!
	# wait (polling) until the first run holds its six rows, still pending
	for i in $(seq 200); do
		[ "$(sql "select count(*) from raw_products where claimed_by is not null")" = 6 ] && break
		sleep 0.02
	done
	[ "$(sql "select count(*) from raw_products where image_status = 'pending'")" -gt 6 ] ||
		fail "the first run finished before the second started"
	run --separate-stderr unde-download --pending
	assert_success
	assert_json_line_count 6
	wait "$a"
	assert_equal "$(wc -l <"$d/a")" 6
	assert_equal "$(comm -12 <(jq .id "$d/a" | sort) <(jq .id <<<"$output" | sort))" ""
	# every photo was fetched exactly once, and every product is done
	run fake_requests cdn /p/
	assert_jq 'length == 24 and (map(.path) | unique | length) == 24'
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded' and claimed_by is null")" = 12 ]
}

@test "runs started at the same moment share the queue without taking a product twice" {
	seed 12 zara jpeg-64x64 1 >/dev/null
	fake_config cdn '{"latency_ms": 50}'
	d=$(unde_tmpdir)
	pids=()
	for r in 1 2 3 4; do
		unde-download --pending --limit 4 >"$d/$r" 2>/dev/null &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	cat "$d"/[1-4] >"$d/all"
	assert_equal "$(wc -l <"$d/all")" 12
	assert_equal "$(jq .id "$d/all" | sort | uniq -d)" ""
	run fake_requests cdn /p/
	assert_jq 'length == 12'
}

@test "a run killed midway leaves every product either uploaded whole or untouched" {
	seed 8 zara jpeg-64x64 3 >/dev/null
	fake_config cdn '{"latency_ms": 200}'
	CONCURRENT_DOWNLOADS=1 unde-download --pending --claim-ttl 1 >/dev/null 2>&1 &
	pid=$!
	# wait (polling the database) until the run is part way through
	for i in $(seq 300); do
		[ "$(sql "select count(*) from raw_products where image_status = 'uploaded'")" -ge 1 ] && break
		sleep 0.05
	done
	kill -KILL "$pid"
	wait "$pid" || true
	run sql "select count(*) from raw_products where image_status = 'pending'"
	[ "$output" -ge 1 ] || fail "the run finished before it was killed"
	# nothing half-marked: uploaded rows have all their photos, the rest nothing
	run sql "select count(*) from raw_products where not (
		(image_status = 'uploaded' and jsonb_array_length(image_urls) = 3)
		or (image_status = 'pending' and image_urls is null))"
	assert_output 0
	for id in $(sql "select external_id from raw_products where image_status = 'uploaded'"); do
		[ "$(objects "originals/zara/$id/" | wc -l)" = 3 ] || fail "$id is marked uploaded without its photos"
	done
	# the killed run's claims lapse, and the next run finishes the job
	for i in $(seq 100); do
		[ "$(sql "select count(*) from raw_products where claimed_until > now()")" = 0 ] && break
		sleep 0.05
	done
	fake_config cdn '{"latency_ms": 0}'
	run --separate-stderr unde-download --pending
	assert_success
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded'")" = 8 ]
}

@test "a wrong S3 secret fails the uploads: products marked error, none marked uploaded" {
	seed 2 zara jpeg-64x64 1 >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env S3_SECRET_KEY=wrong unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 69
	assert_stderr_error_code storage_error
	[[ $stderr == *SignatureDoesNotMatch* ]]
	run sql "select image_status, count(*) from raw_products group by 1"
	assert_output 'error|2'
}

@test "an object store that does not answer is a temporary failure (exit 75)" {
	seed 1 zara jpeg-64x64 1 >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env S3_ENDPOINT=http://127.0.0.1:9 HTTP_MAX_ATTEMPTS=1 unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 75
	[ "$(sql 'select image_status from raw_products')" = error ]
}

@test "with S3_ENDPOINT=file:// everything works locally, and no temporary file is left" {
	d=$(unde_tmpdir)
	mkdir "$d/objects" "$d/tmp"
	seed 2 zara png-100x100-alpha 2 >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr env -u S3_ACCESS_KEY -u S3_SECRET_KEY S3_ENDPOINT="file://$d/objects" \
		TMPDIR="$d/tmp" unde-download <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_jq --arg u "file://$d/objects/$S3_BUCKET/originals/zara/ZARA1/1.jpg" \
		'select(.external_id == "ZARA1") | .provider == "local" and .image_urls[0] == $u'
	curl -fsS "$CDN/p/png-100x100-alpha/zara/ZARA1/1.jpg" | cmp - "$d/objects/$S3_BUCKET/originals/zara/ZARA1/1.jpg"
	run find "$d/objects" -name '.*'
	assert_output ''
	run ls -A "$d/tmp"
	assert_output ''
}

@test "records without an id, and ids staging does not have, are refused" {
	run --separate-stderr unde-download <<<$'{"external_id":"x"}\n{"id":999999}'
	assert_failure 65
	assert_stderr_error_code missing_field
	assert_stderr_error_code not_found
}

@test "a product held by another run is reported busy and left alone" {
	seed 1 zara jpeg-64x64 1 >"$BATS_TEST_TMPDIR/in"
	sql "update raw_products set claimed_by = 'other-run', claimed_until = now() + interval '1 hour'"
	run --separate-stderr unde-download <"$BATS_TEST_TMPDIR/in"
	assert_failure 75
	assert_stderr_error_code busy
	run sql "select image_status, claimed_by from raw_products"
	assert_output 'pending|other-run'
}

@test "the §19 metrics are written: errors, pending count, speed" {
	d=$(unde_tmpdir)
	seed 3 zara jpeg-600x800 2 >/dev/null
	jq -nc --arg c "$CDN" '{id: "bad", name: "n", brand: "zara", images: ["\($c)/missing/1.jpg"]}' |
		unde-apify --from - >/dev/null 2>&1
	UNDE_METRICS_DIR=$d unde-download --pending --limit 3 >/dev/null 2>&1 || true
	prom=$d/unde-download.prom
	grep -qx 'photo_download_pending_count 1' "$prom"
	grep -qx 'photo_download_photos 6' "$prom"
	grep -qx 'photo_download_errors 0' "$prom"
	speed=$(awk '$1 == "photo_download_speed_mbps" {print $2}' "$prom")
	awk -v s="$speed" 'BEGIN { exit !(s > 0) }'
	UNDE_METRICS_DIR=$d unde-download --pending >/dev/null 2>&1 || true
	grep -qx 'photo_download_errors 1' "$d/unde-download.prom"
	grep -qx 'photo_download_pending_count 0' "$d/unde-download.prom"
}

@test "configuration errors name the variable; --help and --version work" {
	run --separate-stderr env -u S3_ENDPOINT unde-download </dev/null
	assert_failure 78
	[[ $stderr == *S3_ENDPOINT* ]]
	run --separate-stderr env CONCURRENT_DOWNLOADS=0 unde-download </dev/null
	assert_failure 78
	[[ $stderr == *CONCURRENT_DOWNLOADS* ]]
	run unde-download --help
	assert_success
	assert_output --partial '--pending'
	run unde-download --version
	assert_output --regexp '^unde-download [0-9]'
}
