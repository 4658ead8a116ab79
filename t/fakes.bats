#!/usr/bin/env bats
# The fake-upstream framework (t/fakes/fakelib.py, t/fakes/echo.py,
# t/lib/fake.bash) and the shared helpers of t/lib/common.bash.

load lib/common

# Tests share one echo fake and reset it in setup: run them one at a time.
BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	fake_start echo echo.py
}

setup() {
	fake_reset echo
}

# curl against loopback, bounded.
c() {
	curl -sS --max-time 10 "$@"
}

# HTTP status of GET URL; its response headers go to $BATS_TEST_TMPDIR/h.
code_of() {
	curl -sS --max-time 10 -o /dev/null -D "$BATS_TEST_TMPDIR/h" -w '%{http_code}' "$@"
}

# Value of response header $1 in $BATS_TEST_TMPDIR/h (exactly as sent).
header_of() {
	sed -n "s/^$1: \(.*\)\r\$/\1/Ip" "$BATS_TEST_TMPDIR/h"
}

@test "a fake reports its port in the port file and on stdout, and answers /_fake/health" {
	[[ $FAKE_ECHO_PORT =~ ^[0-9]+$ ]]
	assert_equal "$FAKE_ECHO_URL" "http://127.0.0.1:$FAKE_ECHO_PORT"
	assert_equal "$(<"$FAKE_DIR/echo.port")" "$FAKE_ECHO_PORT"
	grep -qx "listening $FAKE_ECHO_PORT" "$FAKE_DIR/echo.log"
	run c -f "$FAKE_ECHO_URL/_fake/health"
	assert_success
	assert_jq '.status == "ok"'
}

@test "echo answers /echo with the method, path, query, headers and body it got" {
	run c -H 'X-Request-Id: r-1' -H 'Content-Type: application/json' \
		--data-binary '{"a":1}' "$FAKE_ECHO_URL/echo?x=1&y=two"
	assert_success
	assert_json_line_count 1
	assert_jq '.method == "POST" and .path == "/echo" and .query == "x=1&y=two"'
	assert_jq '.headers["x-request-id"] == "r-1" and .body == "{\"a\":1}"'
	run c "$FAKE_ECHO_URL/echo"
	assert_jq '.method == "GET" and .body == ""'
}

@test "echo answers /status/NNN with that status, /bytes/N with N bytes, /json with ok" {
	assert_equal "$(code_of "$FAKE_ECHO_URL/status/418")" 418
	assert_equal "$(code_of "$FAKE_ECHO_URL/status/204")" 204
	assert_equal "$(code_of "$FAKE_ECHO_URL/status/503?retry_after=7")" 503
	assert_equal "$(header_of Retry-After)" 7
	assert_equal "$(c "$FAKE_ECHO_URL/bytes/100000" | wc -c)" 100000
	assert_equal "$(c "$FAKE_ECHO_URL/bytes/3" | od -An -tx1 | tr -d ' ')" 000102
	run c "$FAKE_ECHO_URL/json"
	assert_output '{"ok":true}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/nowhere")" 404
	assert_equal "$(code_of -X DELETE "$FAKE_ECHO_URL/json")" 405
}

@test "a 429 rule with retry_after answers 429 with exactly that Retry-After, count times, then normally" {
	fake_fail echo '{"mode":"429","count":2,"retry_after":"2"}'
	local i
	for i in 1 2; do
		assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 429
		assert_equal "$(header_of Retry-After)" 2
	done
	run c "$FAKE_ECHO_URL/json"
	assert_output '{"ok":true}'
	run c "$FAKE_ECHO_URL/json"
	assert_output '{"ok":true}'
	run fake_requests echo
	assert_jq '[.[].status] == [429, 429, 200, 200]'
}

@test "a 429 answer has a JSON error body" {
	fake_fail echo '{"mode":"429"}'
	run c "$FAKE_ECHO_URL/json"
	assert_jq '.error.code == 429'
}

@test "a 503 rule sends an HTTP-date Retry-After unchanged" {
	fake_fail echo '{"mode":"503","retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 503
	assert_equal "$(header_of Retry-After)" "Wed, 21 Oct 2015 07:28:00 GMT"
}

@test "a 500 rule answers one request with 500 and a JSON error body by default" {
	fake_fail echo '{"mode":"500"}'
	run c -w '\n%{http_code}' "$FAKE_ECHO_URL/json"
	assert_line --index 1 500
	assert_equal "$(jq -r .error.code <<<"${lines[0]}")" 500
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
}

@test "a rule with a path fails only the requests whose path matches it" {
	fake_fail echo '{"path":"/status/","mode":"500","count":-1}'
	fake_fail echo '{"path":"^/e.ho$","mode":"503","count":-1}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
	assert_equal "$(code_of "$FAKE_ECHO_URL/status/200")" 500
	assert_equal "$(code_of "$FAKE_ECHO_URL/echo")" 503
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
}

@test "a rule with count -1 fails every request until reset" {
	fake_fail echo '{"mode":"500","count":-1}'
	local i
	for i in 1 2 3 4; do
		assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 500
	done
	fake_reset echo
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
}

@test "a malformed rule answers 200 with a JSON content type and a body that is not valid JSON" {
	fake_fail echo '{"mode":"malformed"}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
	assert_equal "$(header_of Content-Type)" application/json
	fake_fail echo '{"mode":"malformed"}'
	run c "$FAKE_ECHO_URL/json"
	assert_success
	refute_output ""
	run jq . <<<"$output"
	assert_failure
}

@test "hang leaves the request unanswered: curl --max-time 1 times out while other requests are served" {
	fake_fail echo '{"mode":"hang","delay_ms":5000}'
	run curl -sS --max-time 1 "$FAKE_ECHO_URL/json"
	assert_failure 28
	run c "$FAKE_ECHO_URL/json"
	assert_output '{"ok":true}'
}

@test "hang with then=close drops the connection after delay_ms" {
	fake_fail echo '{"mode":"hang","delay_ms":100,"then":"close"}'
	run curl -sS --max-time 10 "$FAKE_ECHO_URL/json"
	assert_failure 52
}

@test "slow answers normally, but not before delay_ms" {
	fake_fail echo '{"mode":"slow","delay_ms":300}'
	run c -w '\n%{time_total}' "$FAKE_ECHO_URL/json"
	assert_success
	assert_line --index 0 '{"ok":true}'
	awk -v t="${lines[1]}" 'BEGIN { exit !(t >= 0.3) }'
}

@test "close drops the connection without a response: curl reports an empty reply" {
	fake_fail echo '{"mode":"close"}'
	run curl -sS --max-time 10 "$FAKE_ECHO_URL/json"
	assert_failure 52
	assert_output --partial 'Empty reply from server'
	run fake_requests echo
	assert_jq 'length == 1 and .[0].fault == "close" and .[0].status == null'
}

@test "the request log records method, path, query, lowercase headers and bodies" {
	c -H 'X-Request-Id: r-123' -H 'Content-Type: application/json' \
		--data-binary '{"a":1}' "$FAKE_ECHO_URL/echo?x=1" >/dev/null
	c "$FAKE_ECHO_URL/json" >/dev/null
	run fake_requests echo
	assert_success
	assert_jq 'length == 2'
	assert_jq '.[0] | .method == "POST" and .path == "/echo" and .query == "x=1" and .args.x == "1"'
	assert_jq '.[0].headers["x-request-id"] == "r-123" and .[0].headers["content-type"] == "application/json"'
	assert_jq '.[0] | .body == "{\"a\":1}" and .body_encoding == "utf-8" and .json.a == 1 and .status == 200'
	assert_jq '.[1] | .method == "GET" and .path == "/json" and .body == ""'
	assert_jq 'all(.[]; .timestamp | type == "number") and .[0].timestamp <= .[1].timestamp'
	run fake_requests echo /js
	assert_jq 'length == 1 and .[0].path == "/json"'
}

@test "the request log keeps a binary body as base64, and chunked request bodies are read whole" {
	printf '\377\000\001' >"$BATS_TEST_TMPDIR/bin"
	run c -H 'Transfer-Encoding: chunked' --data-binary "@$BATS_TEST_TMPDIR/bin" "$FAKE_ECHO_URL/echo"
	assert_jq '.body == "/wAB" and .body_encoding == "base64"'
	head -c 200000 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/big"
	run c -H 'Transfer-Encoding: chunked' --data-binary "@$BATS_TEST_TMPDIR/big" "$FAKE_ECHO_URL/echo"
	assert_jq '.body | length == 200000'
	run fake_requests echo
	assert_jq '.[0].body == "/wAB" and .[0].body_encoding == "base64" and (.[1].body | length) == 200000'
}

@test "responses keep the connection alive: three requests over one connection are all logged" {
	fake_fail echo '{"mode":"429","retry_after":"1"}'
	run curl -sSv --max-time 10 -o /dev/null -o /dev/null -o /dev/null \
		"$FAKE_ECHO_URL/json" "$FAKE_ECHO_URL/echo" "$FAKE_ECHO_URL/status/500"
	assert_success
	assert_equal "$(grep -c 'Re-using existing connection' <<<"$output")" 2
	run fake_requests echo
	assert_jq '[.[].status] == [429, 200, 500]'
}

@test "reset clears the rules, the request log and the config" {
	fake_fail echo '{"mode":"500","count":-1}'
	fake_config echo '{"knob":1}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 500
	run c "$FAKE_ECHO_URL/_fake/config"
	assert_jq '.knob == 1'
	fake_reset echo
	run fake_requests echo
	assert_output '[]'
	run c "$FAKE_ECHO_URL/_fake/config"
	assert_output '{}'
	assert_equal "$(code_of "$FAKE_ECHO_URL/json")" 200
}

@test "control requests are neither logged nor failed by rules" {
	fake_fail echo '{"mode":"500","count":-1}'
	run c -f "$FAKE_ECHO_URL/_fake/health"
	assert_success
	run fake_requests echo
	assert_output '[]'
}

@test "an invalid rule is refused and fake_fail fails saying why" {
	run fake_fail echo '{"mode":"teapot"}'
	assert_failure
	assert_output --partial 'mode must be'
	run fake_fail echo '{"mode":"500","count":0}'
	assert_failure
	assert_output --partial 'count must be'
	run fake_fail echo 'not json'
	assert_failure
}

@test "fake_start fails at once and shows the log when the fake cannot start" {
	printf 'raise SystemExit("boom: no such upstream")\n' >"$BATS_TEST_TMPDIR/broken.py"
	run fake_start broken "$BATS_TEST_TMPDIR/broken.py"
	assert_failure
	assert_output --partial 'boom: no such upstream'
	[[ ! -e $FAKE_DIR/broken.pid ]]
}

@test "two fakes run side by side on different ports, under pyenv's and Debian's python3" {
	[[ -x /usr/bin/python3 ]] || skip "no /usr/bin/python3"
	FAKE_PYTHON=/usr/bin/python3 fake_start debian echo.py
	[[ $FAKE_DEBIAN_PORT != "$FAKE_ECHO_PORT" ]]
	run c "$FAKE_DEBIAN_URL/json"
	assert_output '{"ok":true}'
	run c "$FAKE_ECHO_URL/json"
	assert_output '{"ok":true}'
	run tr '\0' ' ' </proc/"$(<"$FAKE_DIR/debian.pid")"/cmdline
	assert_output --partial /usr/bin/python3
	fake_stop debian
}

@test "fake_stop stops the fake, forgets its URL and leaves no process behind" {
	fake_start gone echo.py
	local pid url=$FAKE_GONE_URL
	pid=$(<"$FAKE_DIR/gone.pid")
	kill -0 "$pid"
	fake_stop gone
	run kill -0 "$pid"
	assert_failure
	run pgrep -f -- "$FAKE_DIR/gone.port"
	assert_failure
	[[ -z ${FAKE_GONE_URL:-} && ! -e $FAKE_DIR/gone.pid && ! -e $FAKE_DIR/gone.port ]]
	run curl -sS --max-time 5 "$url/json"
	assert_failure 7
	fake_stop gone # stopping twice is fine
}

@test "a fake exits cleanly on SIGTERM, removing its port file" {
	fake_start term echo.py
	local pid status=0
	pid=$(<"$FAKE_DIR/term.pid")
	kill -TERM "$pid"
	wait "$pid" || status=$?
	assert_equal "$status" 0
	[[ ! -e $FAKE_DIR/term.port ]]
	grep -qx stopped "$FAKE_DIR/term.log"
	fake_stop term
}

@test "every fake's connections have TCP_NODELAY on, so a streamed body is not held back by Nagle" {
	# the handler looks at its own socket before serving: the client cannot
	# see the server's TCP_NODELAY, and timing it would be a timed test
	run env PYTHONDONTWRITEBYTECODE=1 python3 - "$UNDE_TOP_SRCDIR/t/fakes" <<'PY'
import os, socket, sys, threading, urllib.request
sys.stderr = open(os.devnull, "w")  # the access log
sys.path.insert(0, sys.argv[1])
import fakelib
fake = fakelib.Fake("nodelay")
fake.route("GET", "/x")(lambda req: (200, {}, iter([b"a", b"b"])))
seen = []
class H(fakelib._Handler):
    def handle(self):
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        super().handle()
H.fake = fake
srv = fakelib._Server(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
body = urllib.request.urlopen("http://127.0.0.1:%d/x" % srv.server_address[1], timeout=10).read()
print(body.decode(), seen)
PY
	assert_success
	assert_output "ab [1]"
}

@test "a fake exits by itself when the process it watches is gone" {
	local port_file=$BATS_TEST_TMPDIR/w.port spid fpid i
	sleep 60 3>&- &
	spid=$!
	PYTHONDONTWRITEBYTECODE=1 python3 "$UNDE_TOP_SRCDIR/t/fakes/echo.py" --port-file "$port_file" --watch-pid "$spid" \
		>"$BATS_TEST_TMPDIR/w.log" 2>&1 3>&- &
	fpid=$!
	for ((i = 0; i < 200; i++)); do
		[[ -s $port_file ]] && break
		sleep 0.05
	done
	[[ -s $port_file ]]
	kill "$spid"
	wait "$spid" || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$fpid" 2>/dev/null || break
		sleep 0.05
	done
	run kill -0 "$fpid"
	assert_failure
	grep -q 'watched process .* is gone' "$BATS_TEST_TMPDIR/w.log"
}

@test "assert_json_line_count counts JSON object lines and rejects other lines" {
	output=$'{"a":1}\n{"a":2}'
	assert_json_line_count 2
	run assert_json_line_count 3
	assert_failure
	output=$'{"a":1}\n{"a": '
	run assert_json_line_count 2
	assert_failure
	assert_output --partial 'not a JSON object'
	output=''
	assert_json_line_count 0
}

@test "assert_jq needs the filter true for every JSON value, and passes jq options on" {
	output=$'{"ok":true,"n":1}\n{"ok":true,"n":2}'
	assert_jq '.ok'
	assert_jq -s 'length == 2'
	assert_jq --argjson n 3 '.n < $n'
	output=$'{"ok":false}\n{"ok":true}'
	run assert_jq '.ok'
	assert_failure
	output=''
	run assert_jq 'true'
	assert_failure
}

@test "assert_stderr_error_code finds the error line of the error contract on stderr" {
	run --separate-stderr bash -c 'echo "{\"out\":1}"; echo "not json" >&2
		echo "{\"level\":\"error\",\"cmd\":\"x\",\"error\":{\"code\":\"upstream_timeout\",\"message\":\"m\"}}" >&2'
	assert_stderr_error_code upstream_timeout
	run assert_stderr_error_code other_code
	assert_failure
}

@test "unde_tmpdir gives a fresh directory under /tmp that the postgres user can enter" {
	local d
	d=$(unde_tmpdir)
	[[ $d == /tmp/unde-t.* && -d $d ]]
	assert_equal "$(stat -c %a "$d")" 755
	printf '%s\n' "$d" >"$BATS_FILE_TMPDIR/last-tmpdir"
}

@test "unde_tmpdir's directory of the previous test is gone" {
	[[ -s $BATS_FILE_TMPDIR/last-tmpdir ]] || skip "runs after the unde_tmpdir test"
	[[ ! -e $(<"$BATS_FILE_TMPDIR/last-tmpdir") ]]
}

@test "common.bash scrubs the developer's UNDE configuration but keeps what setup_file exports" {
	local at=@ # not a literal at-test line: bats would count it as a test of this file
	cat >"$BATS_TEST_TMPDIR/inner.bats" <<EOF
load "$UNDE_TOP_SRCDIR/t/lib/common"
setup_file() { export STAGING_DB_URL=from-setup-file; }
${at}test inner {
	[[ -z \${GEMINI_API_KEY+x} && -z \${XIMILAR_API_URL+x} && -z \${S3_BUCKET+x} ]]
	[[ -z \${UNDE_LOG_LEVEL+x} && -z \${PGHOST+x} && -z \${http_proxy+x} ]]
	[[ \$STAGING_DB_URL == from-setup-file && \$UNDE_ENV_FILE == /dev/null ]]
	[[ \$KEEP_ME == yes && \$PATH == "$UNDE_TOP_SRCDIR/src:$UNDE_TOP_SRCDIR/bin:"* ]]
	[[ \$UNDE_VALGRIND == 1 && \$PG_BINDIR == /opt/pg/bin ]] # harness knobs are kept
}
EOF
	run env -i PATH="$PATH" HOME="${HOME:-/root}" KEEP_ME=yes GEMINI_API_KEY=secret \
		XIMILAR_API_URL=http://real S3_BUCKET=b UNDE_LOG_LEVEL=debug PGHOST=elsewhere \
		STAGING_DB_URL=postgres://dev http_proxy=http://proxy:3128 UNDE_TOP_SRCDIR="$UNDE_TOP_SRCDIR" \
		UNDE_VALGRIND=1 PG_BINDIR=/opt/pg/bin \
		UNDE_TOP_BUILDDIR="$UNDE_TOP_SRCDIR" "$BATS_ROOT/bin/bats" "$BATS_TEST_TMPDIR/inner.bats"
	assert_success
}

@test "a fake left running by a test file exits when its bats run ends" {
	local at=@
	cat >"$BATS_TEST_TMPDIR/leak.bats" <<EOF
load "$UNDE_TOP_SRCDIR/t/lib/common"
setup_file() { fake_start leak echo.py; cp "\$FAKE_DIR/leak.pid" "$BATS_TEST_TMPDIR/leak.pid"; }
teardown_file() { :; } # forgets fake_stop_all
${at}test leak { curl -fsS "\$FAKE_LEAK_URL/json"; }
EOF
	run timeout 20 env -i PATH="$PATH" HOME="${HOME:-/root}" UNDE_TOP_SRCDIR="$UNDE_TOP_SRCDIR" \
		"$BATS_ROOT/bin/bats" "$BATS_TEST_TMPDIR/leak.bats"
	assert_success
	local pid i
	pid=$(<"$BATS_TEST_TMPDIR/leak.pid")
	for ((i = 0; i < 100; i++)); do
		_fake_alive "$pid" || break
		sleep 0.05
	done
	run _fake_alive "$pid"
	assert_failure
}
