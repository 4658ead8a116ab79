#!/usr/bin/env bats
# libunde: the JSON-lines runner, config, logging, metrics, HTTP client and
# PostgreSQL wrapper that every command shares, driven through t/unit/libtest.

load lib/common
load lib/fake
load lib/pg

setup_file() {
	fake_start echo echo.py
	pg_start
}

teardown_file() {
	fake_stop_all
	pg_stop
}

setup() {
	fake_reset echo
}

# Under `make check-valgrind` every libtest run is watched for leaks and
# memory errors; a finding turns into exit 99, which every assertion on the
# exit status then reports.
libtest() {
	if [ -n "${UNDE_VALGRIND:-}" ]; then
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect --error-exitcode=99 \
			"$UNDE_TOP_BUILDDIR/t/unit/libtest" "$@"
	else
		"$UNDE_TOP_BUILDDIR/t/unit/libtest" "$@"
	fi
}

# --- the filter runner and JSON lines -------------------------------------

@test "a filter passes every record through and adds its own key" {
	run --separate-stderr libtest filter <<<'{"a":1,"keep":"me"}'
	assert_success
	assert_output '{"a":1,"keep":"me","seen":true}'
}

@test "a malformed line is reported with its line number and the stream goes on" {
	run --separate-stderr libtest filter <<<$'{"n":1}\nnot json\n{"n":3}'
	assert_failure 65
	assert_equal "$(printf '%s\n' "$output" | jq -c .n | paste -sd,)" "1,3"
	echo "$stderr" | jq -se 'map(select(.error.code=="malformed_input")) | .[0].error.line == 2' >/dev/null
	[[ "$stderr" == *'line 2: not valid JSON'* ]]
}

@test "a line that is JSON but not an object is malformed" {
	run --separate-stderr libtest filter <<<'[1,2]'
	assert_failure 65
	[[ "$stderr" == *'line 1: not a JSON object'* ]]
	assert_output ''
}

@test "invalid UTF-8 is rejected with the line number" {
	run --separate-stderr libtest filter < <(printf '{"ok":1}\n{"bad":"\xff\xfe"}\n')
	assert_failure 65
	assert_output '{"ok":1,"seen":true}'
	[[ "$stderr" == *'line 2: not valid JSON'* ]]
}

@test "a line with a NUL byte is rejected" {
	run --separate-stderr libtest filter < <(printf '{"a":"x\0y"}\n{"b":2}\n')
	assert_failure 65
	assert_output '{"b":2,"seen":true}'
	[[ "$stderr" == *'line 1: contains a NUL byte'* ]]
}

@test "a line over the size limit is skipped whole and the next line is read" {
	long=$(head -c 500 /dev/zero | tr '\0' a)
	run --separate-stderr libtest filter --max-line 100 <<<"{\"x\":\"$long\"}"$'\n{"n":2}'
	assert_failure 65
	assert_output '{"n":2,"seen":true}'
	[[ "$stderr" == *'line 1: longer than the limit of 100 bytes'* ]]
}

@test "duplicate keys in one object are malformed" {
	run --separate-stderr libtest filter <<<'{"a":1,"a":2}'
	assert_failure 65
	[[ "$stderr" == *duplicate* ]]
}

@test "blank lines are skipped and CRLF line ends are accepted" {
	run --separate-stderr libtest filter < <(printf '\n{"n":1}\r\n   \n{"n":2}\n')
	assert_success
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 2
}

@test "a record that fails goes to stderr whole, with its request_id, and not downstream" {
	run --separate-stderr libtest filter <<<$'{"fail":"data","request_id":"rq-7","x":[1]}\n{"n":2}'
	assert_failure 65
	assert_output '{"n":2,"seen":true}'
	line=$(printf '%s\n' "$stderr" | jq -c 'select(.error)')
	assert_equal "$(jq -c .record <<<"$line")" '{"fail":"data","request_id":"rq-7","x":[1]}'
	assert_equal "$(jq -r .request_id <<<"$line")" rq-7
	assert_equal "$(jq -r .error.code <<<"$line")" invalid_field
	assert_equal "$(jq -r .cmd <<<"$line")" libtest-filter
}

@test "the failed records on stderr can be fed back in as they are" {
	run --separate-stderr libtest filter <<<$'{"fail":"data","id":1}\n{"fail":"data","id":2}'
	assert_failure 65
	retry=$(printf '%s\n' "$stderr" | jq -c 'select(.level=="error" and .record) | .record | del(.fail)')
	run --separate-stderr libtest filter <<<"$retry"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -c .id | paste -sd,)" "1,2"
}

@test "the exit status names the worst failure: unavailable over temporary over bad data" {
	run --separate-stderr libtest filter <<<'{"fail":"data"}'
	assert_failure 65
	run --separate-stderr libtest filter <<<$'{"fail":"data"}\n{"fail":"temp"}'
	assert_failure 75
	run --separate-stderr libtest filter <<<$'{"fail":"temp"}\n{"fail":"unavailable"}\n{"fail":"data"}'
	assert_failure 69
}

@test "online mode answers every line, failures as an error object" {
	run --separate-stderr libtest filter --online <<<$'{"n":1,"request_id":"a"}\nnope\n{"fail":"data","request_id":"c"}'
	assert_failure 65
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 3
	assert_equal "$(sed -n 2p <<<"$output" | jq -r .error.code)" malformed_input
	assert_equal "$(sed -n 3p <<<"$output" | jq -r '.error.code + " " + .request_id')" "invalid_field c"
}

@test "UNDE_ONLINE=1 switches online mode on, as unde-httpd sets it" {
	UNDE_ONLINE=1 run --separate-stderr libtest filter <<<'{"fail":"data"}'
	assert_failure 65
	assert_jq '.error.code == "invalid_field"'
}

@test "each output line is flushed at once, before the next input arrives" {
	coproc LT { "$UNDE_TOP_BUILDDIR/t/unit/libtest" filter --online 2>/dev/null; }
	pid=$LT_PID
	echo '{"n":1}' >&"${LT[1]}"
	read -r -t 10 line <&"${LT[0]}"
	assert_equal "$line" '{"n":1,"seen":true}'
	echo '{"n":2}' >&"${LT[1]}"
	read -r -t 10 line <&"${LT[0]}"
	assert_equal "$line" '{"n":2,"seen":true}'
	exec {LT[1]}>&-
	wait "$pid"
}

@test "progress lines come before the record, which ends with stage done" {
	run --separate-stderr libtest filter <<<'{"stages":2}'
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -r .stage | paste -sd,)" "progress,progress,done"
}

@test "--pending takes records from the queue and --limit bounds them" {
	run --separate-stderr libtest filter --pending --limit 2
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -r .source | paste -sd,)" "pending,pending"
	run --separate-stderr libtest filter --retry-failed
	assert_equal "$(printf '%s\n' "$output" | jq -r .source | sort -u)" retry
}

@test "--limit without --pending and unknown options are usage errors" {
	run --separate-stderr libtest filter --limit 3 </dev/null
	assert_failure 64
	run --separate-stderr libtest filter --no-such-option </dev/null
	assert_failure 64
	run --separate-stderr libtest filter --pending --limit zero
	assert_failure 64
}

@test "--help and --version answer on stdout and exit 0" {
	run --separate-stderr libtest filter --help
	assert_success
	assert_output --partial 'Usage: libtest-filter'
	assert_output --partial '--pending'
	run --separate-stderr libtest filter --version
	assert_output --regexp '^libtest-filter [0-9.]+$'
}

@test "the run reports records done and failed to unde-job" {
	stats="$BATS_TEST_TMPDIR/stats"
	UNDE_JOB_STATS="$stats" run --separate-stderr libtest filter <<<$'{"n":1}\n{"fail":"data"}\nbad'
	assert_failure 65
	assert_equal "$(jq -c '[.records_done,.records_failed]' "$stats")" "[1,2]"
}

@test "a reader that goes away ends the run without hanging" {
	run bash -c 'yes "{\"n\":1}" | head -n 100000 | "$UNDE_TOP_BUILDDIR/t/unit/libtest" filter 2>/dev/null | head -n 1'
	assert_success
	assert_output '{"n":1,"seen":true}'
}

# --- configuration ---------------------------------------------------------

@test "a bad integer setting exits 78 and names the variable" {
	BATCH_SIZE=abc run --separate-stderr libtest conf long BATCH_SIZE 100 1 1000
	assert_failure 78
	echo "$stderr" | jq -se 'map(select(.variable=="BATCH_SIZE")) | .[0].msg == "BATCH_SIZE=\"abc\" is invalid: expected an integer from 1 to 1000"' >/dev/null
	BATCH_SIZE=5000 run --separate-stderr libtest conf long BATCH_SIZE 100 1 1000
	assert_failure 78
	BATCH_SIZE=250 run --separate-stderr libtest conf long BATCH_SIZE 100 1 1000
	assert_output 250
	run --separate-stderr libtest conf long BATCH_SIZE 100 1 1000
	assert_output 100
}

@test "numbers and booleans are validated too" {
	MOOD_SMOOTHING_FACTOR=0.3 run --separate-stderr libtest conf double MOOD_SMOOTHING_FACTOR 0.5 0 1
	assert_output 0.3
	MOOD_SMOOTHING_FACTOR=1.5 run --separate-stderr libtest conf double MOOD_SMOOTHING_FACTOR 0.5 0 1
	assert_failure 78
	FLAG=yes run --separate-stderr libtest conf bool FLAG 0 0 0
	assert_output 1
	FLAG=maybe run --separate-stderr libtest conf bool FLAG 0 0 0
	assert_failure 78
}

@test "a bad secret is named but its value never printed" {
	S3_SECRET_KEY=hunter2 run --separate-stderr libtest conf long S3_SECRET_KEY 1 1 2
	assert_failure 78
	[[ "$stderr" == *S3_SECRET_KEY* ]]
	[[ "$stderr" != *hunter2* ]]
}

@test "passwords in URLs are redacted in every form" {
	run --separate-stderr libtest conf redact 'postgresql://unde:p4ss@db.example:5432/unde_staging'
	assert_output 'postgresql://unde:***@db.example:5432/unde_staging'
	run --separate-stderr libtest conf redact 'host=db user=unde password=p4ss dbname=x'
	assert_output 'host=db user=unde password=*** dbname=x'
	run --separate-stderr libtest conf redact 'https://api.example/v1?token=1&password=p4ss&x=2'
	assert_output 'https://api.example/v1?token=1&password=***&x=2'
	run --separate-stderr libtest conf redact 'postgresql://unde@db/x'
	assert_output 'postgresql://unde@db/x'
}

@test "an env file sets variables, but the environment wins" {
	f="$BATS_TEST_TMPDIR/unde.env"
	cat >"$f" <<-'ENV'
	# comment
	export STAGING_DB_URL="postgresql://a@b/c"
	BATCH_SIZE=50 # trailing comment
	QUOTED='x y'
	ENV
	run --separate-stderr libtest conf file "$f" STAGING_DB_URL
	assert_output 'postgresql://a@b/c'
	run --separate-stderr libtest conf file "$f" QUOTED
	assert_output 'x y'
	run --separate-stderr libtest conf file "$f" BATCH_SIZE
	assert_output 50
	BATCH_SIZE=7 run --separate-stderr libtest conf file "$f" BATCH_SIZE
	assert_output 7
}

@test "a broken env file is refused with its line number" {
	f="$BATS_TEST_TMPDIR/bad.env"
	printf 'GOOD=1\nthis line has no equals\n' >"$f"
	run --separate-stderr libtest conf file "$f" GOOD
	assert_failure 78
	[[ "$stderr" == *'bad.env:2: expected NAME=VALUE'* ]]
}

@test "a command given a missing --env-file exits 78 naming the file" {
	run --separate-stderr libtest filter --env-file /nonexistent/unde.env </dev/null
	assert_failure 78
	[[ "$stderr" == */nonexistent/unde.env* ]]
}

@test "a command reads UNDE_ONLINE from its env file" {
	f="$BATS_TEST_TMPDIR/online.env"
	echo 'UNDE_ONLINE=1' >"$f"
	run --separate-stderr libtest filter --env-file "$f" <<<'{"fail":"data"}'
	assert_jq '.error.code == "invalid_field"'
}

# --- logging ---------------------------------------------------------------

@test "every log line is JSON with ts, level, cmd and request_id" {
	run --separate-stderr libtest filter <<<'{"fail":"temp","request_id":"abc"}'
	while IFS= read -r l; do
		jq_e 'has("ts") and has("level") and has("cmd") and has("request_id")' <<<"$l" >/dev/null
		jq_e '.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")' <<<"$l" >/dev/null
	done <<<"$stderr"
}

# --- metrics ---------------------------------------------------------------

@test "metrics are written as a complete textfile with no temp file left" {
	d=$(unde_tmpdir)
	run libtest metrics "$d/x.prom" unde_a=1 unde_b=2.5 unde_a=3
	assert_success
	assert_equal "$(ls "$d")" x.prom
	assert_equal "$(grep -c '^# TYPE unde_a gauge' "$d/x.prom")" 1
	grep -qx 'unde_b{job="libtest"} 2.5' "$d/x.prom"
	grep -qx 'unde_a{job="libtest"} 3' "$d/x.prom"
}

@test "a metrics file that cannot be written is an error" {
	run libtest metrics /nonexistent/dir/x.prom unde_a=1
	assert_failure 73
}

# --- HTTP client -----------------------------------------------------------

@test "the HTTP client returns the status and body and sends the request_id" {
	run --separate-stderr libtest http --request-id req-42 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 200 and .attempts == 1 and .body.ok == true'
	fake_requests echo | jq_e 'map(select(.path=="/json")) | .[0].headers["x-request-id"] == "req-42"' >/dev/null
}

@test "the HTTP client posts a JSON body" {
	run --separate-stderr libtest http --data '{"q":1}' "$FAKE_ECHO_URL/echo"
	assert_jq '.body.method == "POST" and (.body.body | fromjson | .q) == 1'
	assert_jq '.body.headers["content-type"] == "application/json"'
}

@test "429 with Retry-After is retried after the time it asks for" {
	fake_fail echo '{"path":"/json","mode":"429","count":2,"retry_after":"1"}'
	run --separate-stderr libtest http --attempts 5 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 200 and .attempts == 3'
	# the server asked for 1 s twice: the client must not have come back sooner
	assert_jq '.elapsed_ms >= 2000'
	assert_equal "$(fake_requests echo | jq '[.[] | select(.path=="/json")] | length')" 3
}

@test "Retry-After given as an HTTP date is honoured" {
	when=$(date -u -d '+1 second' '+%a, %d %b %Y %H:%M:%S GMT')
	fake_fail echo "{\"path\":\"/json\",\"mode\":\"503\",\"count\":1,\"retry_after\":\"$when\"}"
	run --separate-stderr libtest http "$FAKE_ECHO_URL/json"
	assert_jq '.status == 200 and .attempts == 2'
}

@test "5xx is retried up to the attempt cap, then returned" {
	fake_fail echo '{"path":"/json","mode":"500","count":-1}'
	run --separate-stderr libtest http --attempts 3 --backoff-ms 10 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 500 and .attempts == 3'
	assert_equal "$(fake_requests echo | jq '[.[] | select(.path=="/json")] | length')" 3
}

@test "4xx other than 429 is not retried" {
	run --separate-stderr libtest http --attempts 3 "$FAKE_ECHO_URL/status/404"
	assert_jq '.status == 404 and .attempts == 1'
}

@test "a hung upstream times out per attempt and counts as no answer" {
	fake_fail echo '{"path":"/json","mode":"hang","count":-1,"delay_ms":5000}'
	run --separate-stderr libtest http --attempts 2 --timeout-ms 300 --backoff-ms 10 "$FAKE_ECHO_URL/json"
	assert_failure 69
	assert_jq '.status == 0 and .attempts == 2 and .timed_out == true'
}

@test "a malformed-then-good upstream: the retry is not hidden from the caller" {
	fake_fail echo '{"path":"/json","mode":"close","count":1}'
	run --separate-stderr libtest http --attempts 2 --backoff-ms 10 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 200 and .attempts == 2'
}

@test "a refused connection is retried and reported" {
	run --separate-stderr libtest http --attempts 2 --backoff-ms 10 "http://127.0.0.1:1/x"
	assert_failure 69
	assert_jq '.status == 0 and .attempts == 2 and (.error | test("connect"; "i"))'
}

@test "a response over the size cap is an error, not a crash" {
	run --separate-stderr libtest http --max-response 1000 "$FAKE_ECHO_URL/bytes/5000"
	assert_jq '.error | test("larger than 1000 bytes")'
	assert_jq '.attempts == 1'
}

@test "many requests run concurrently through one multi handle" {
	fake_fail echo '{"path":"/json","mode":"slow","count":-1,"delay_ms":1500}'
	urls=()
	for i in 1 2 3 4 5 6; do urls+=("$FAKE_ECHO_URL/json?i=$i"); done
	run --separate-stderr libtest http --concurrency 6 "${urls[@]}"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -s 'map(select(.status==200)) | length')" 6
	# all six requests reached the server before the first answer could have
	# left it: they were in flight together
	spread=$(fake_requests echo | jq '[.[] | select(.path=="/json") | .timestamp] | (max - min)')
	run awk -v s="$spread" 'BEGIN { exit !(s < 1.5) }'
	assert_success
}

@test "at most max_concurrent requests are in flight" {
	fake_fail echo '{"path":"/json","mode":"slow","count":-1,"delay_ms":700}'
	run --separate-stderr libtest http --concurrency 2 "$FAKE_ECHO_URL/json?a" "$FAKE_ECHO_URL/json?b" "$FAKE_ECHO_URL/json?c"
	assert_success
	# the third request can only start once one of the first two has finished
	gap=$(fake_requests echo | jq '[.[] | select(.path=="/json") | .timestamp] | sort | .[2] - .[0]')
	run awk -v s="$gap" 'BEGIN { exit !(s >= 0.65) }'
	assert_success
}

# --- PostgreSQL ------------------------------------------------------------

@test "queries are parameterised: a parameter stays data" {
	url=$(pg_createdb libtest)
	run libtest pg "$url" 'select $1::int + 1' 41
	assert_success
	assert_output '["42"]'
	run libtest pg "$url" 'select $1::text' "x'); drop table pg_class; --"
	assert_output "[\"x'); drop table pg_class; --\"]"
}

@test "a failed query logs the SQLSTATE and exits non-zero" {
	url=$(pg_createdb libtest2)
	run --separate-stderr libtest pg "$url" 'select * from no_such_table'
	assert_failure 65
	[[ "$stderr" == *'"sqlstate":"42P01"'* ]]
}

@test "an unreachable database is named without its password" {
	run --separate-stderr libtest pg 'postgresql://app:topsecret@127.0.0.1:1/db' 'select 1'
	assert_failure 69
	[[ "$stderr" == *'postgresql://app:***@127.0.0.1:1/db'* ]]
	[[ "$stderr" != *topsecret* ]]
}

@test "UUIDs are version 4 and differ" {
	a=$(libtest uuid)
	b=$(libtest uuid)
	[[ "$a" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	[ "$a" != "$b" ]
}

# --- online-service pieces (issue 10): deadlines, reuse, SSE, siblings, ----
# --- provider chains, shared counters, the cache, the runner's tables  ----

@test "a deadline cuts a slow upstream and no retry is scheduled past it" {
	fake_fail echo '{"path":"/json","mode":"slow","count":-1,"delay_ms":8000}'
	run --separate-stderr libtest http2 --deadline-ms 800 --attempts 5 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 0 and .timed_out and .deadline_cut and .attempts == 1'
	assert_jq '.elapsed_ms < 4000'
}

@test "a 429 whose Retry-After is longer than the time left fails at once" {
	fake_fail echo '{"path":"/json","mode":"429","count":1,"retry_after":"30"}'
	run --separate-stderr libtest http2 --deadline-ms 5000 --attempts 5 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 429 and .attempts == 1 and .deadline_cut and .retry_after_ms == 30000'
	assert_jq '.elapsed_ms < 2500'
	[[ "$stderr" == *'not retrying: the deadline comes first'* ]]
}

@test "a Retry-After that fits in the deadline is still honoured" {
	fake_fail echo '{"path":"/json","mode":"503","count":1,"retry_after":"1"}'
	run --separate-stderr libtest http2 --deadline-ms 8000 --attempts 3 "$FAKE_ECHO_URL/json"
	assert_success
	assert_jq '.status == 200 and .attempts == 2 and (.deadline_cut | not) and .elapsed_ms >= 1000'
}

@test "requests one after another from one process reuse one connection" {
	run --separate-stderr libtest http2 --sequential "$FAKE_ECHO_URL/json?1" "$FAKE_ECHO_URL/json?2" \
		"$FAKE_ECHO_URL/echo" "$FAKE_ECHO_URL/json?3" "$FAKE_ECHO_URL/json?4"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -s 'map(select(.status==200)) | length')" 5
	assert_equal "$(printf '%s\n' "$output" | jq -s 'map(.new_connections) | add')" 1
	# counted at the server: every request came over the same TCP connection
	assert_equal "$(fake_requests echo | jq '[.[].client_port] | unique | length')" 1
}

@test "threads keep a connection each and share DNS and TLS state without races" {
	run --separate-stderr libtest http2 --threads 4 "$FAKE_ECHO_URL/json?1" "$FAKE_ECHO_URL/json?2" \
		"$FAKE_ECHO_URL/json?3" "$FAKE_ECHO_URL/json?4" "$FAKE_ECHO_URL/json?5"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -s 'map(select(.status==200)) | length')" 20
	assert_equal "$(fake_requests echo | jq 'length')" 20
	ports=$(fake_requests echo | jq '[.[].client_port] | unique | length')
	[ "$ports" -le 4 ]
}

@test "a connection outlives its thread: the next thread's call to that host reuses it" {
	fake_start echo2 echo.py >/dev/null
	# main thread → echo, a thread → echo2 (then ends), main → echo2, a thread → echo
	run --separate-stderr libtest http2 --alternate "$FAKE_ECHO_URL/json?1" "$FAKE_ECHO2_URL/json?2" \
		"$FAKE_ECHO2_URL/json?3" "$FAKE_ECHO_URL/json?4"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -s 'map(select(.status==200)) | length')" 4
	assert_equal "$(printf '%s\n' "$output" | jq -sc 'map(.new_connections)')" '[1,1,0,0]'
	assert_equal "$(fake_requests echo | jq '[.[].client_port] | unique | length')" 1
	assert_equal "$(fake_requests echo2 | jq '[.[].client_port] | unique | length')" 1
	fake_stop echo2
}

@test "SSE events are delivered one by one as they arrive, never buffered whole" {
	run --separate-stderr libtest sse "$FAKE_ECHO_URL/sse?n=3&gap_ms=700"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -c '[.event, .data.n]' | paste -sd' ')" \
		'["tick",1] ["tick",2] ["tick",3]'
	# the first event was in hand well before the last had been sent
	run jq -se '(.[2].at_ms - .[0].at_ms) >= 1000 and (.[0].wall < .[2].data.sent)' <<<"$output"
	assert_success
	[[ "$stderr" == *'"events":3'* && "$stderr" == *'"buffered":0'* ]]
}

@test "a sibling call posts the record with its request_id and reads stage lines and the answer" {
	fake_config echo '{"reply_body":"{\"stage\":\"progress\",\"n\":1}\n{\"stage\":\"done\",\"ok\":true}\n"}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"request_id":"r-7","q":1}'
	assert_success
	assert_jq '.status == 0 and .http_status == 200 and .answer.ok == true and (.stages | length) == 1'
	fake_requests echo | jq_e '.[0] | .path == "/reply" and .headers["x-request-id"] == "r-7" and .json.q == 1' >/dev/null
}

@test "a sibling's error is lifted into the caller's error with the mapped exit status" {
	fake_config echo '{"reply_status":400,"reply_body":"{\"error\":{\"code\":\"missing_field\",\"message\":\"text is required\",\"status\":65}}"}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"q":1}'
	assert_failure 65
	assert_jq '.code == "missing_field" and .message == "text is required" and .answer == null'
	fake_config echo '{"reply_status":503,"reply_body":"{\"error\":{\"code\":\"database_unavailable\",\"message\":\"down\",\"status\":69}}"}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"q":1}'
	assert_failure 69
	assert_jq '.code == "database_unavailable"'
	fake_config echo '{"reply_status":429,"reply_body":"busy"}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"q":1}'
	assert_failure 75
	assert_jq '.code == "rate_limited"'
	fake_config echo '{"reply_status":504,"reply_body":"{\"error\":{\"code\":\"timeout\",\"message\":\"route timeout\"}}"}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"q":1}'
	assert_failure 75
}

@test "a sibling that does not answer in the budget fails as temporary, an unset URL as config" {
	fake_fail echo '{"path":"/reply","mode":"slow","count":-1,"delay_ms":8000}'
	ECHO_URL=$FAKE_ECHO_URL run --separate-stderr libtest svc echo /reply '{"q":1}' 600
	assert_failure 75
	assert_jq '.code == "sibling_timeout"'
	run --separate-stderr libtest svc no-such /x '{}'
	assert_failure 78
	assert_jq '.message == "NO_SUCH_URL is not set"'
}

chain() {
	ALPHA_API_URL=$FAKE_ECHO_URL BETA_API_URL=$FAKE_ECHO_URL libtest chain "$@"
}

@test "a provider chain answers from the first configured provider and says why others were skipped" {
	BETA_API_KEY=bk run --separate-stderr chain <<<'{"request_id":"c1","q":1}'
	assert_success
	assert_jq '.provider == "beta" and .answer.auth == "bk" and .providers_skipped[0].provider == "alpha" and .providers_skipped[0].reason == "no_key"'
	ALPHA_API_KEY=ak BETA_API_KEY=bk run --separate-stderr chain <<<'{"q":1}'
	assert_jq '.provider == "alpha" and .answer.auth == "Bearer ak" and (has("providers_skipped") | not)'
	[[ "$stderr" != *'"ak"'* && "$stderr" != *'Bearer ak'* ]]
}

@test "a malformed provider answer falls through to the next provider" {
	fake_fail echo '{"path":"/echo","mode":"malformed","count":1}'
	ALPHA_API_KEY=ak BETA_API_KEY=bk run --separate-stderr chain <<<'{"q":1}'
	assert_success
	assert_jq '.provider == "beta" and .providers_skipped[0].reason == "malformed"'
	# valid JSON of the wrong shape is malformed too
	fake_fail echo '{"path":"/echo","mode":"malformed","count":1,"body":"{\"candidates\":[]}"}'
	ALPHA_API_KEY=ak BETA_API_KEY=bk run --separate-stderr chain <<<'{"q":1}'
	assert_jq '.provider == "beta" and .providers_skipped[0].reason == "malformed" and (.providers_skipped[0].message | test("wrong shape"))'
}

@test "a deadline cuts a slow provider and the local stand-in answers inside the budget" {
	fake_fail echo '{"path":"/echo","mode":"slow","count":-1,"delay_ms":10000}'
	ALPHA_API_KEY=ak BETA_API_KEY=bk UNDE_DEADLINE_MS=1500 run --separate-stderr chain <<<'{"q":1}'
	assert_success
	assert_jq '.provider == "local" and .answer.echoed == "local" and .providers_skipped[0].reason == "timeout"'
	assert_jq '.providers_skipped[1].reason == "no_time" or .providers_skipped[1].reason == "timeout"'
	# far below the provider's 10 s: the deadline cut it (the local answer
	# itself may take a while under valgrind on a loaded machine)
	assert_jq '.chain_ms < 6000'
}

@test "a 429 with a long Retry-After makes the chain move on at once" {
	fake_fail echo '{"path":"/echo","mode":"429","count":1,"retry_after":"60"}'
	ALPHA_API_KEY=ak BETA_API_KEY=bk UNDE_DEADLINE_MS=10000 run --separate-stderr chain <<<'{"q":1}'
	assert_success
	assert_jq '.provider == "beta" and .providers_skipped[0].reason == "429" and .providers_skipped[0].status == 429'
	assert_jq '.chain_ms < 5000'
}

@test "when every provider fails and there is no stand-in the record fails with the reasons" {
	fake_fail echo '{"path":"/echo","mode":"500","count":-1}'
	ALPHA_API_KEY=ak BETA_API_KEY=bk HTTP_BACKOFF_BASE_MS=10 run --separate-stderr chain --no-local <<<'{"q":1}'
	assert_failure 75
	assert_output ''
	echo "$stderr" | jq -se 'map(select((.error|type) == "object" and .error.code == "providers_failed")) | .[0].record.providers_skipped | map(.reason) == ["5xx","5xx"]' >/dev/null
}

@test "counters from concurrent processes add up exactly" {
	W=$(unde_tmpdir)
	for i in 1 2 3 4 5 6 7 8; do
		libtest counters "$W/c" add libtest_events_total 'k="v"' 5000 &
	done
	wait
	run libtest counters "$W/c" get libtest_events_total 'k="v"'
	assert_output 40000
	run libtest counters "$W/c" render
	assert_output --partial 'libtest_events_total{k="v"} 40000'
	assert_output --partial 'libtest_never_total 0'
}

@test "a histogram renders cumulative buckets, sum and count, and passes promtool" {
	W=$(unde_tmpdir)
	libtest counters "$W/c" observe libtest_duration_seconds 'route="a"' 3
	libtest counters "$W/c" observe libtest_duration_seconds 'route="a"' 40
	libtest counters "$W/c" observe libtest_duration_seconds 'route="a"' 90000
	run libtest counters "$W/c" render
	assert_output --partial 'libtest_duration_seconds_bucket{route="a",le="0.005"} 1'
	assert_output --partial 'libtest_duration_seconds_bucket{route="a",le="0.05"} 2'
	assert_output --partial 'libtest_duration_seconds_bucket{route="a",le="30"} 2'
	assert_output --partial 'libtest_duration_seconds_bucket{route="a",le="+Inf"} 3'
	assert_output --partial 'libtest_duration_seconds_count{route="a"} 3'
	assert_output --partial 'libtest_duration_seconds_sum{route="a"} 90.043000'
	printf '%s\n' "$output" | promtool check metrics
}

@test "a label of 300 characters is kept whole and escaped, and the text still parses" {
	W=$(unde_tmpdir)
	long="POST /$(printf 'r%.0s' $(seq 300))\"q"
	libtest counters "$W/c" label libtest_events_total "$long"
	run libtest counters "$W/c" render
	assert_output --partial "libtest_events_total{route=\"POST /$(printf 'r%.0s' $(seq 300))\\\"q\"} 1"
	printf '%s\n' "$output" | promtool check metrics
}

@test "a symlink planted at the textfile path is replaced, not followed" {
	W=$(unde_tmpdir)
	echo precious >"$W/victim"
	ln -s "$W/victim" "$W/out.prom"
	libtest counters "$W/c" add libtest_events_total '' 2
	run libtest counters "$W/c" textfile "$W/out.prom"
	assert_success
	assert_equal "$(cat "$W/victim")" precious
	[ -f "$W/out.prom" ] && [ ! -L "$W/out.prom" ]
	grep -qx 'libtest_events_total 2' "$W/out.prom"
	[ "$(ls "$W" | wc -l)" -eq 3 ]
}

@test "a counters file that is a symlink is refused" {
	W=$(unde_tmpdir)
	: >"$W/target"
	ln -s "$W/target" "$W/c"
	run --separate-stderr libtest counters "$W/c" add libtest_events_total '' 1
	assert_failure 73
	[[ "$stderr" == *'cannot open the counters file'* ]]
	[ ! -s "$W/target" ]
}

@test "the cache evicts the least recently used entry and expires entries after their TTL" {
	run libtest cache 2 400 <<-'EOF'
	put a 1
	put b 2
	get a
	put c 3
	get b
	get a
	get c
	sleep 600
	get c
	stats
	EOF
	assert_success
	assert_equal "$output" "$(printf '%s\n' 'a 1' 'b (miss)' 'a 1' 'c 3' 'c (miss)' 'hits=3 misses=2 expired=1 evicted=1 entries=1')"
}

@test "--help is written from the option table" {
	run libtest opts --help
	assert_success
	assert_output --partial 'Usage: libtest-opts [OPTIONS] [WORD]'
	assert_output --partial '  -k, --top-k N        results to keep (1-100, default 10)'
	assert_output --partial '  --name NAME          a name to echo'
	assert_output --partial '  -v, --verbose        say more'
}

@test "options from the table are parsed and stored, numbers within their bounds" {
	run --separate-stderr libtest opts -k 7 --name zed -v word <<<'{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10"}'
	assert_success
	assert_jq '.top_k == 7 and .name == "zed" and .verbose and .operand == "word"'
	run --separate-stderr libtest opts --top-k 101
	assert_failure 64
	[[ "$stderr" == *'"option":"top-k"'*'is above the maximum'* ]]
	run --separate-stderr libtest opts -k 3x
	assert_failure 64
	[[ "$stderr" == *'is not a whole number'* ]]
}

@test "operands over the command's limit are a usage error" {
	run --separate-stderr libtest opts one two
	assert_failure 64
	[[ "$stderr" == *'too many arguments'* ]]
	run --separate-stderr libtest chain stray </dev/null
	assert_failure 64
	[[ "$stderr" == *'this command takes no arguments'* ]]
}

@test "the record validator names the bad key and lets good records through" {
	run --separate-stderr libtest opts <<-'EOF'
	{"n":1}
	{"user_id":"not-a-uuid"}
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","n":5000}
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","text":"far too long here"}
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","tags":[1,2,3,4]}
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","n":3,"text":"ok","tags":[1]}
	EOF
	assert_failure 65
	assert_jq '.n == 3'
	assert_equal "$(echo "$stderr" | jq -rs 'map(select(.error) | .error.code + ": " + .error.message) | .[]')" "$(printf '%s\n' \
		'missing_field: user_id is required' 'invalid_field: user_id must be a UUID' \
		'invalid_field: n must be from 0 to 1000' 'invalid_field: text is longer than 10 bytes' \
		'invalid_field: tags is longer than 3 elements')"
}

@test "the after-record hook runs once per record, failed or not, and the batch hook per batch" {
	run --separate-stderr libtest opts <<-'EOF'
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","n":1}
	{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10","n":2,"fail":true}
	{"n":3}
	EOF
	assert_failure 65
	assert_equal "$(echo "$stderr" | jq -c 'select(.msg=="after record") | [.after, .status, .n]' | paste -sd' ')" \
		'[1,0,1] [2,65,2] [3,65,3]'
	run --separate-stderr libtest opts --pending --limit 3
	assert_success
	assert_equal "$(printf '%s\n' "$output" | jq -c .batches | paste -sd,)" "1,1,1"
	[[ "$stderr" == *'"msg":"batch","size":3'* ]]
}

@test "UNDE_DEADLINE_MS gives each record its own budget, from when it was read" {
	UNDE_DEADLINE_MS=5000 run --separate-stderr libtest opts <<<'{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10"}'
	assert_success
	assert_jq '.budget_ms == 5000 and .ms_left > 3000 and .ms_left <= 5000'
	run --separate-stderr libtest opts <<<'{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10"}'
	assert_jq '.budget_ms == 0 and .ms_left == null'
	UNDE_DEADLINE_MS=soon run --separate-stderr libtest opts </dev/null
	assert_failure 78
}

@test "a pull source feeds the runner records the command makes itself" {
	run --separate-stderr libtest pull 3 </dev/null
	assert_failure 65
	assert_equal "$(printf '%s\n' "$output" | jq -c .item | paste -sd,)" "1,3"
	[[ "$stderr" == *'"code":"item_two"'* ]]
}

@test "the number parser takes whole numbers within bounds and nothing else" {
	run libtest num 42 0 100; assert_output 42
	run libtest num -5 -10 10; assert_output -5
	run libtest num 101 0 100; assert_failure 65; assert_output 'error: is above the maximum'
	run libtest num -1 0 100; assert_output 'error: is below the minimum'
	run libtest num ' 4' 0 100; assert_output 'error: is not a whole number'
	run libtest num 4k 0 100; assert_output 'error: is not a whole number'
	run libtest num '' 0 100; assert_output 'error: is empty'
	run libtest num 99999999999999999999 0 100; assert_output 'error: is above the maximum'
}

@test "the printf buffer grows to fit any output and respects its limit" {
	run libtest strbuf 100000
	assert_success
	assert_output "$(printf '%s\n' '100005 < |42>' 'limited -1 0')"
}

@test "one table maps exit statuses to HTTP and HTTP answers to exit statuses" {
	for p in 0:200 64:400 65:400 69:503 75:503 70:500 78:500; do
		run libtest status exit "${p%%:*}"; assert_output "${p##*:}"
	done
	run libtest status http 400; assert_output '65 upstream_rejected'
	run libtest status http 401; assert_output '78 upstream_auth'
	run libtest status http 429; assert_output '75 rate_limited'
	run libtest status http 503; assert_output '75 upstream_unavailable'
	run libtest status http 504; assert_output '75 upstream_timeout'
	run libtest status http 501; assert_output '69 upstream_error'
	run libtest status http 204; assert_output '0 upstream_protocol'
}

@test "PostgreSQL failures map to exit statuses in one place" {
	url=$(pg_createdb libtest3)
	for p in 40001:75 40P01:75 55P03:75 57014:75 23505:65 22P02:65 42P01:70 08006:69; do
		run --separate-stderr libtest pgstatus "$url" "${p%%:*}"
		assert_output "${p##*:} ${p%%:*}"
	done
	run --separate-stderr libtest pgstatus 'postgresql://127.0.0.1:1/db' 40001
	assert_output 69
}

@test "a symlink planted at a metrics textfile's path is replaced, not followed" {
	W=$(unde_tmpdir)
	echo precious >"$W/victim"
	ln -s "$W/victim" "$W/m.prom"
	run libtest metrics "$W/m.prom" libtest_x=1
	assert_success
	assert_equal "$(cat "$W/victim")" precious
	[ -f "$W/m.prom" ] && [ ! -L "$W/m.prom" ]
	grep -q '^libtest_x{job="libtest"} 1$' "$W/m.prom"
}

# --- h8http: redaction by libpq's parse, exclusive metrics temp files ------

@test "a conninfo password is redacted however libpq would read it: spaces, quotes, escaped keys, sslpassword" {
	local s
	for s in 'host=db password = s3cret dbname=x' "host=db password='s3 cret' dbname=x" \
		'postgresql://db/x?pass%77ord=s3cret' 'postgresql://u@db/x?password=s3cret' \
		'host=db sslpassword=s3cret' "host=db password='it\\'s s3cret'"; do
		run --separate-stderr libtest conf redact "$s"
		assert_success
		[[ $output != *s3* ]] || fail "leaked in: $output (from $s)"
		[[ $output == *'password=***'* ]] || fail "no mark in: $output (from $s)"
	done
}

@test "a long URL password is redacted whole, not cut before its @" {
	local long
	long=$(printf 'L%.0s' {1..700})
	run --separate-stderr libtest conf redact "postgresql://u:$long@db/x"
	assert_output 'postgresql://u:***@db/x'
	run --separate-stderr libtest conf redact "host=db password=$long dbname=x"
	[[ $output != *LLL* ]]
	# an @ inside the password does not end the userinfo early
	run --separate-stderr libtest conf redact 'postgresql://u:p@ss@db/x'
	assert_output 'postgresql://u:***@db/x'
}

@test "a connection string libpq cannot parse is not shown at all" {
	run --separate-stderr libtest conf redact "host='unterminated password=s3cret"
	assert_success
	[[ $output != *s3cret* ]]
	assert_output --partial 'cannot parse'
}

@test "an unreachable database named by a spaced conninfo is logged without its password" {
	run --separate-stderr libtest pg 'host=127.0.0.1 port=1 dbname=db password = topsecret' 'select 1'
	assert_failure 69
	[[ "$stderr" == *'password=***'* ]]
	[[ "$stderr" != *topsecret* ]]
}

@test "a metrics textfile never follows a symlink planted at a guessable temp name" {
	d=$(unde_tmpdir)
	echo precious >"$d/victim"
	# exec keeps the shell's pid, the old temp name's suffix
	run bash -c 'ln -s "$1/victim" "$1/x.prom.tmp.$$"; exec "$2" metrics "$1/x.prom" unde_a=1' \
		_ "$d" "$UNDE_TOP_BUILDDIR/t/unit/libtest"
	assert_success
	assert_equal "$(cat "$d/victim")" precious
	grep -qx 'unde_a{job="libtest"} 1' "$d/x.prom"
	[ ! -L "$d/x.prom" ]
	assert_equal "$(stat -c %a "$d/x.prom")" 644
	# only the planted link is left beside the file: no temp file of ours
	assert_equal "$(ls "$d" | grep -c tmp)" 1
}

@test "a command that is not a filter parses argv with the same option table, options after operands too" {
	run --separate-stderr libtest argv one -c 3 --name zed two -n --tag x
	assert_success
	assert_jq '.count == 3 and .name == "zed" and .dry and .operands == ["one","two"] and .callbacks == [{"id":110,"arg":null},{"id":42,"arg":"x"}]'
	run libtest argv --help
	assert_success
	assert_output --partial '  -c, --count N        how many (1-9)'
	assert_output --partial '  -n, --dry-run        count, change nothing'
	refute_output --partial 'tag'
	run --separate-stderr libtest argv --count 10
	assert_failure 64
	[[ "$stderr" == *'invalid value for --count'*'"option":"count"'*'is above the maximum'* ]]
	run --separate-stderr libtest argv --tag bad
	assert_failure 64
	[[ "$stderr" == *'invalid value for --tag'* ]]
	run --separate-stderr libtest argv --nope
	assert_failure 64
	[[ "$stderr" == *'unknown option --nope'* ]]
	run --separate-stderr libtest argv --name
	assert_failure 64
	[[ "$stderr" == *'option --name needs an argument'* ]]
	run libtest argv --version
	assert_success
	assert_output --regexp '^libtest-argv [0-9]'
}

# --- libjpeg that returns its errors (lib/jpegerr.h) ----------------------

# A 128×96 grey JPEG of noise (so that most of the file is scan data).
noise_jpeg() {
	vips gaussnoise "$BATS_TEST_TMPDIR/n.v" 128 96 &&
		vips cast "$BATS_TEST_TMPDIR/n.v" "$BATS_TEST_TMPDIR/n8.v" uchar &&
		vips jpegsave "$BATS_TEST_TMPDIR/n8.v" "$1"
}

@test "a whole JPEG decodes through jpegerr, data after its end-of-image marker too" {
	noise_jpeg "$BATS_TEST_TMPDIR/a.jpg"
	run libtest jpeg <"$BATS_TEST_TMPDIR/a.jpg"
	assert_success
	assert_output '{"width":128,"height":96}'
	run libtest jpeg < <(cat "$BATS_TEST_TMPDIR/a.jpg"; printf 'phone trailer')
	assert_success
	assert_output '{"width":128,"height":96}'
}

@test "a JPEG cut short is an error marked truncated, not rows of grey" {
	noise_jpeg "$BATS_TEST_TMPDIR/a.jpg"
	run libtest jpeg < <(head -c $(($(stat -c %s "$BATS_TEST_TMPDIR/a.jpg") / 2)) "$BATS_TEST_TMPDIR/a.jpg")
	assert_failure 65
	assert_jq '.truncated == true and (.error | test("Premature end"))'
}

@test "bytes that are no JPEG are an error with libjpeg's message, not truncated, and the process lives" {
	run libtest jpeg <<<'GIF89a not a jpeg'
	assert_failure 65
	assert_jq '.truncated == false and (.error | test("Not a JPEG file"))'
}
