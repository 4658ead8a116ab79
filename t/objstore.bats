#!/usr/bin/env bats
# lib/objstore: S3 PUT/GET/HEAD/DELETE signed by libcurl (SigV4), checked by a
# real S3-compatible server that verifies signatures (moto), read back with a
# second, independent client (Debian's awscli 2); and the file:// stand-in.
# Driven through t/unit/objtool.

load lib/common
load lib/moto

setup_file() {
	moto_start unde-images
}

# the reference checker of a test that failed before it stopped it
teardown() {
	if [ -n "${SIGV4_DIR:-}" ] && [ -f "$SIGV4_DIR/pid" ]; then
		kill "$(<"$SIGV4_DIR/pid")" 2>/dev/null || true
	fi
	unde_teardown
}

teardown_file() {
	moto_stop
	unde_teardown_file
}

objtool() {
	if [ -n "${UNDE_VALGRIND:-}" ]; then
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--error-exitcode=99 "$UNDE_TOP_BUILDDIR/t/unit/objtool" "$@"
	else
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" "$@"
	fi
}

# --- S3 against moto --------------------------------------------------------

@test "a PUT signed by libcurl is stored, and the aws CLI reads back the same bytes" {
	d=$(unde_tmpdir)
	head -c 70000 /dev/urandom >"$d/photo.bin"
	run --separate-stderr objtool put originals/zara/1001/1.jpg image/jpeg <"$d/photo.bin"
	assert_success
	assert_jq --arg u "$S3_ENDPOINT/unde-images/originals/zara/1001/1.jpg" '.url == $u and .size == 70000'
	moto_aws s3 cp s3://unde-images/originals/zara/1001/1.jpg "$d/back.bin" >/dev/null
	cmp "$d/photo.bin" "$d/back.bin"
}

@test "the Content-Type given is the one S3 keeps" {
	echo '<svg/>' | objtool put types/a.svg image/svg+xml
	run moto_aws s3api head-object --bucket unde-images --key types/a.svg
	assert_success
	assert_jq '.ContentType == "image/svg+xml"'
}

@test "a GET returns exactly what the aws CLI stored" {
	d=$(unde_tmpdir)
	head -c 12345 /dev/urandom >"$d/in.bin"
	moto_aws s3 cp "$d/in.bin" s3://unde-images/from-aws/in.bin >/dev/null
	objtool get from-aws/in.bin >"$d/out.bin"
	cmp "$d/in.bin" "$d/out.bin"
}

@test "HEAD gives the size, the ETag S3 computed (MD5) and the Content-Type" {
	printf 'hello world' | objtool put head/h.txt text/plain
	run --separate-stderr objtool head head/h.txt
	assert_success
	md5=$(printf 'hello world' | md5sum | cut -d' ' -f1)
	assert_jq --arg e "\"$md5\"" '.size == 11 and .etag == $e and .content_type == "text/plain"'
}

@test "an object of several megabytes goes up and down intact (no Expect header signed)" {
	d=$(unde_tmpdir)
	head -c 3000000 /dev/urandom >"$d/big.bin"
	objtool put big/3mb.bin <"$d/big.bin" >/dev/null
	moto_aws s3 cp s3://unde-images/big/3mb.bin "$d/aws.bin" >/dev/null
	cmp "$d/big.bin" "$d/aws.bin"
	objtool get big/3mb.bin | cmp - "$d/big.bin"
}

@test "an empty object can be stored and read back" {
	objtool put empty/zero.bin </dev/null
	run moto_aws s3api head-object --bucket unde-images --key empty/zero.bin
	assert_jq '.ContentLength == 0'
	[ "$(objtool get empty/zero.bin | wc -c)" -eq 0 ]
}

@test "a wrong secret is refused with 403 SignatureDoesNotMatch and nothing is stored" {
	run --separate-stderr env S3_SECRET_KEY=not-the-secret "$UNDE_TOP_BUILDDIR/t/unit/objtool" \
		put refused/x.txt <<<'data'
	assert_failure 2
	echo "$stderr" | jq -se 'map(select(.code == "SignatureDoesNotMatch" and .http_status == 403
		and .retryable == false)) | length == 1' >/dev/null
	# the secret itself never appears in what we print
	[[ $stderr != *not-the-secret* ]]
	run moto_aws s3api head-object --bucket unde-images --key refused/x.txt
	assert_failure
}

@test "a wrong secret cannot read either" {
	echo secret-data | objtool put private/p.txt
	run --separate-stderr env S3_SECRET_KEY=wrong "$UNDE_TOP_BUILDDIR/t/unit/objtool" get private/p.txt
	assert_failure 2
	assert_output ''
	[[ $stderr == *SignatureDoesNotMatch* ]]
}

@test "an access key the server does not know is refused" {
	run --separate-stderr env S3_ACCESS_KEY=AKIANOTAUSER S3_SECRET_KEY=x \
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" get private/p.txt
	assert_failure 2
	[[ $stderr == *InvalidAccessKeyId* ]]
}

@test "a missing object is 'not found' for GET and HEAD, and DELETE of it succeeds" {
	run --separate-stderr objtool get nowhere/x.jpg
	assert_failure 1
	run --separate-stderr objtool head nowhere/x.jpg
	assert_failure 1
	run objtool delete nowhere/x.jpg
	assert_success
}

@test "a bucket that does not exist is an error, not 'not found'" {
	run --separate-stderr env S3_BUCKET=no-such-bucket "$UNDE_TOP_BUILDDIR/t/unit/objtool" get a/b
	assert_failure 2
	[[ $stderr == *NoSuchBucket* ]]
}

@test "DELETE removes the object for every client" {
	echo bye | objtool put gone/g.txt
	moto_aws s3api head-object --bucket unde-images --key gone/g.txt >/dev/null
	objtool delete gone/g.txt
	run moto_aws s3api head-object --bucket unde-images --key gone/g.txt
	assert_failure
}

@test "many PUTs at once through the multi interface all land, each with its bytes" {
	d=$(unde_tmpdir)
	args=()
	for i in 1 2 3 4 5 6 7 8; do
		head -c $((i * 1000)) /dev/urandom >"$d/$i.jpg"
		args+=("many/p/$i.jpg=$d/$i.jpg")
	done
	run --separate-stderr objtool put-many "${args[@]}"
	assert_success
	assert_jq -s 'length == 8 and all(.status == "ok")'
	for i in 1 2 3 4 5 6 7 8; do
		moto_aws s3 cp "s3://unde-images/many/p/$i.jpg" - | cmp - "$d/$i.jpg"
	done
	run --separate-stderr objtool get-many many/p/1.jpg many/p/8.jpg many/p/none.jpg
	assert_failure 2
	assert_jq -s --arg h "$(sha256sum "$d/8.jpg" | cut -d' ' -f1)" \
		'.[1].sha256 == $h and .[0].size == 1000 and .[2].status == "not_found"'
}

@test "virtual-host addressing signs for bucket.host and reaches the same bucket" {
	port=${MOTO_URL##*:}
	run --separate-stderr env S3_ENDPOINT="http://localhost:$port" S3_ADDRESSING_STYLE=virtual \
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" put vhost/v.txt text/plain <<<'virtual'
	assert_success
	assert_jq --arg u "http://unde-images.localhost:$port/vhost/v.txt" '.url == $u'
	run moto_aws s3 cp s3://unde-images/vhost/v.txt -
	assert_output virtual
}

@test "a key with a space is encoded so that the signature still holds" {
	echo spaced | objtool put "sp/a b.txt"
	run moto_aws s3 cp "s3://unde-images/sp/a b.txt" -
	assert_output spaced
}

# sigv4_check_start — t/lib/sigv4-check.py (botocore's signer as the
# reference) on a free port; S3_* point at it in the caller's shell.
sigv4_check_start() {
	local d port try
	d=$(unde_tmpdir)
	for try in 1 2 3 4 5; do
		port=$(unde_free_port)
		rm -f "$d/port"
		unde_detach python3 "$UNDE_TOP_SRCDIR/t/lib/sigv4-check.py" --port "$port" --port-file "$d/port" \
			--bucket unde-images --access-key AKIDCHECK --secret-key checksecret --region eu-central-1 \
			>"$d/log" 2>"$d/err" &
		echo $! >"$d/pid"
		for _ in $(seq 600); do
			[ -s "$d/port" ] && break
			kill -0 "$(<"$d/pid")" 2>/dev/null || break
			sleep 0.05
		done
		[ -s "$d/port" ] && break
	done
	[ -s "$d/port" ] || { cat "$d/err" >&2; return 1; }
	SIGV4_DIR=$d
	S3_ENDPOINT=http://127.0.0.1:$port S3_ACCESS_KEY=AKIDCHECK S3_SECRET_KEY=checksecret S3_REGION=eu-central-1
}

@test "keys with ':' and other reserved characters are sent and signed as S3 specifies" {
	# moto cannot judge these (its canonical URI leaves them bare: the aws
	# CLI's own PUT of a ':' key gets 403 from it); botocore's signer can
	sigv4_check_start
	local keys=("u/recognition/req:1/1.jpg" "x/a+b=c&d,e;f@g\$h!'()*[].txt" $'y/caf\xc3\xa9 %41~.txt')
	for k in "${keys[@]}"; do
		printf 'body of %s' "$k" | objtool put "$k" text/plain
		run objtool get "$k"
		assert_success
		assert_output "body of $k"
	done
	kill "$(<"$SIGV4_DIR/pid")"
	# every request accepted, each path the key encoded once (':' as %3A)
	assert_equal "$(jq -s 'length' "$SIGV4_DIR/log")" 6
	assert_equal "$(jq -s 'all(.ok)' "$SIGV4_DIR/log")" true
	assert_equal "$(jq -rs '.[0].raw_path' "$SIGV4_DIR/log")" /unde-images/u/recognition/req%3A1/1.jpg
	assert_equal "$(jq -rs '.[4].raw_path' "$SIGV4_DIR/log")" /unde-images/y/caf%C3%A9%20%2541~.txt
}

@test "the reference checker refuses a signature made with another secret" {
	sigv4_check_start
	S3_SECRET_KEY=wrong
	run --separate-stderr objtool put "u/a:b.txt" text/plain <<<"x"
	assert_failure
	[[ $output$stderr == *SignatureDoesNotMatch* ]]
	kill "$(<"$SIGV4_DIR/pid")"
	assert_equal "$(jq -s 'map(.ok) == [false]' "$SIGV4_DIR/log")" true
}

@test "keys that could leave the bucket are refused before any request" {
	for k in ../etc/passwd /abs a//b a/./b a/.. "" 'a\b'; do
		run --separate-stderr objtool put "$k" <<<x
		assert_failure 2
		[[ $stderr == *invalid_key* ]] || fail "key '$k' was not refused: $stderr"
	done
}

@test "a server that does not answer is a retryable transport error" {
	run --separate-stderr env S3_ENDPOINT=http://127.0.0.1:9 HTTP_MAX_ATTEMPTS=1 \
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" get a/b
	assert_failure 2
	echo "$stderr" | jq -se 'map(select(.code == "transport" and .retryable)) | length == 1' >/dev/null
}

@test "object URLs map back to their keys, and foreign URLs do not" {
	run objtool url originals/zara/1/1.jpg
	assert_output "$S3_ENDPOINT/unde-images/originals/zara/1/1.jpg"
	run objtool key "$S3_ENDPOINT/unde-images/originals/zara/1/1.jpg"
	assert_output originals/zara/1/1.jpg
	run objtool key "https://elsewhere.example/unde-images/originals/zara/1/1.jpg"
	assert_failure 1
	run objtool key "$S3_ENDPOINT/unde-images/../secret"
	assert_failure 1
	run env S3_PUBLIC_URL=https://cdn.example/img/ "$UNDE_TOP_BUILDDIR/t/unit/objtool" url c/x.jpg
	assert_output https://cdn.example/img/c/x.jpg
	run env S3_PUBLIC_URL=https://cdn.example/img "$UNDE_TOP_BUILDDIR/t/unit/objtool" key https://cdn.example/img/c/x.jpg
	assert_output c/x.jpg
}

@test "missing or invalid S3 settings are configuration errors naming the variable" {
	run --separate-stderr env -u S3_ENDPOINT "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
	[[ $stderr == *S3_ENDPOINT* ]]
	run --separate-stderr env -u S3_SECRET_KEY "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
	[[ $stderr == *S3_SECRET_KEY* ]]
	run --separate-stderr env S3_ADDRESSING_STYLE=sideways "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
	[[ $stderr == *S3_ADDRESSING_STYLE* ]]
	run --separate-stderr env S3_BUCKET=Bad_Bucket "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
	[[ $stderr == *S3_BUCKET* ]]
	run --separate-stderr env S3_ENDPOINT=ftp://x "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
}

# --- the file:// stand-in ---------------------------------------------------

@test "file:// keeps each object as DIR/bucket/key and needs no keys" {
	d=$(unde_tmpdir)
	head -c 5000 /dev/urandom >"$d/in.bin"
	run --separate-stderr env -u S3_ACCESS_KEY -u S3_SECRET_KEY S3_ENDPOINT="file://$d" \
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" put originals/zara/7/1.jpg image/jpeg <"$d/in.bin"
	assert_success
	assert_jq --arg u "file://$d/unde-images/originals/zara/7/1.jpg" '.url == $u'
	cmp "$d/in.bin" "$d/unde-images/originals/zara/7/1.jpg"
	export S3_ENDPOINT="file://$d"
	[ "$(objtool provider)" = local ]
	objtool get originals/zara/7/1.jpg | cmp - "$d/in.bin"
	run objtool head originals/zara/7/1.jpg
	assert_jq '.size == 5000'
	run objtool key "file://$d/unde-images/originals/zara/7/1.jpg"
	assert_output originals/zara/7/1.jpg
}

@test "file:// replaces objects whole and leaves no temporary files" {
	d=$(unde_tmpdir)
	export S3_ENDPOINT="file://$d"
	head -c 200000 /dev/urandom >"$d/a.bin"
	head -c 100 /dev/urandom >"$d/b.bin"
	objtool put k/obj <"$d/a.bin" >/dev/null
	objtool put k/obj <"$d/b.bin" >/dev/null
	cmp "$d/b.bin" "$d/unde-images/k/obj"
	run find "$d/unde-images" -name '.*'
	assert_output ''
}

@test "file:// GET, HEAD and DELETE behave as S3's do" {
	d=$(unde_tmpdir)
	export S3_ENDPOINT="file://$d"
	run objtool get no/such
	assert_failure 1
	run objtool head no/such
	assert_failure 1
	run objtool delete no/such
	assert_success
	echo x | objtool put del/me >/dev/null
	objtool delete del/me
	[ ! -e "$d/unde-images/del/me" ]
	run --separate-stderr objtool put ../../escape <<<x
	assert_failure 2
	[ ! -e "$d/../escape" ]
}

@test "file:// HEAD: a directory where the object would be is not found, anything else not a file is an error" {
	d=$(unde_tmpdir)
	export S3_ENDPOINT="file://$d"
	mkdir -p "$d/unde-images/a/dir" "$d/unde-images/b"
	mkfifo "$d/unde-images/b/fifo"
	ln -s loop "$d/unde-images/b/loop"
	run --separate-stderr objtool head a/dir
	assert_failure 1
	run --separate-stderr objtool head b/fifo
	assert_failure 2
	[[ $stderr == *b/fifo* ]]
	# stat fails with ELOOP: an error, decided without the unset stat buffer
	run --separate-stderr objtool head b/loop
	assert_failure 2
}

@test "a file:// endpoint whose directory is missing is a configuration error" {
	run --separate-stderr env S3_ENDPOINT=file:///nonexistent/unde-objects \
		"$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
	[[ $stderr == *S3_ENDPOINT* ]]
	run --separate-stderr env S3_ENDPOINT=file://relative/dir "$UNDE_TOP_BUILDDIR/t/unit/objtool" provider
	assert_failure 78
}
