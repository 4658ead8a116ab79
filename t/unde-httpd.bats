#!/usr/bin/env bats
# t/unde-httpd.bats — the inetd-style HTTP front, behind a real superserver
# (systemd-socket-activate --inetd -a), talked to by real clients: curl,
# wrk, and a raw socket client (fixtures/httpd/rawhttp.py) for the requests
# no polite client would send.

load lib/common

FIX=$UNDE_TOP_SRCDIR/t/fixtures/httpd
LIBTEST=$UNDE_TOP_BUILDDIR/t/unit/libtest

load lib/httpd

# start_server NAME ROUTES [unde-httpd OPTION...]
# unde-httpd behind systemd-socket-activate through t/lib/httpd.bash's
# httpd_serve (a checked free port, a bounded wait for /health; NAME_PORT
# exported, log and pid in $W), with its counter block in $W/NAME.metrics.
# Its processes carry HTTPD_T_MARK=<file-unique>-NAME in their
# environment, so leaked ones can be found even when orphaned.
start_server() {
	local name=$1 routes=$2
	shift 2
	httpd_serve "$name" "$routes" "HTTPD_T_MARK=$MARK-$name" -- \
		--metrics-file "$W/$name.metrics" "$@"
}

setup_file() {
	W=$(unde_tmpdir)
	MARK=unde-httpd-t-$$-$RANDOM
	HTTPD_T_DIR=$W
	export W MARK HTTPD_T_DIR
	cat >"$W/main.routes" <<-EOF
		# the routes behind the main test server
		POST /echo           $LIBTEST filter
		GET  /query          $LIBTEST filter
		PUT  /echo-put       $LIBTEST filter
		POST /count          $FIX/count-starts $W/starts $LIBTEST filter
		POST /stream         stream: $LIBTEST filter
		POST /gated          timeout=10 stream:$FIX/stream-gated $W/gate
		POST /slow           timeout=1 $FIX/sleeper $W/sleeper.pids
		POST /exit64         $FIX/exit-with 64
		POST /exit65         $FIX/exit-with 65
		POST /exit69         $FIX/exit-with 69
		POST /exit75         $FIX/exit-with 75
		POST /exit3          $FIX/exit-with 3
		POST /crash          $FIX/segv
		POST /garbage        $FIX/garbage
		POST /env            $FIX/env-echo
		POST /line/notjson   $FIX/misbehave line $W/notjson.line
		POST /line/twoobj    $FIX/misbehave line $W/twoobj.line
		POST /line/badutf8   $FIX/misbehave line $W/badutf8.line
		POST /line/escerr    $FIX/misbehave line $W/escerr.line
		POST /line/norid     $FIX/misbehave line $W/norid.line
		POST /line/otherrid  $FIX/misbehave line $W/otherrid.line
		POST /twice          $FIX/misbehave twice
		POST /late           $FIX/misbehave late
		POST /early          timeout=5 $FIX/misbehave early
		POST /spawn-exit     $FIX/spawn-exit $W/spawned.pid
		POST /verbatim       $FIX/misbehave echo
		POST /stream-foreign stream: $FIX/misbehave line $W/otherrid.line
		POST /kept           keep=connection stream: $FIX/count-starts $W/kept-starts $LIBTEST filter
		POST /kept-twice     keep=connection stream: $FIX/misbehave twice
		POST /kept-once      keep=connection stream: $FIX/count-starts $W/once-starts $FIX/stream-once
		POST /binary         binary=blob type=audio/mpeg $LIBTEST filter
		POST /binary-plain   binary=blob $LIBTEST filter
	EOF
	echo '{this is not json}' >"$W/notjson.line"
	echo '{"request_id":"RID"}{"a":1}' >"$W/twoobj.line"
	printf '{"request_id":"RID","a":"\xff"}\n' >"$W/badutf8.line"
	echo '{"err\u006fr":{"code":"down","message":"m","status":69},"request_id":"RID"}' >"$W/escerr.line"
	echo '{"a":1}' >"$W/norid.line"
	echo '{"request_id":"someone-else","a":1}' >"$W/otherrid.line"
	cat >"$W/missing.routes" <<-EOF
		POST /echo     $LIBTEST filter
		POST /analyze  unde-no-such-command-here
	EOF
	cat >"$W/load.routes" <<-EOF
		POST /echo     $LIBTEST filter
	EOF
	start_server main "$W/main.routes" --read-timeout 1 --keepalive-timeout 3
	start_server missing "$W/missing.routes"
	start_server load "$W/load.routes"
	cat >"$W/ws.routes" <<-EOF
		WS   /ws        timeout=5 $FIX/count-starts $W/ws-starts $LIBTEST filter
		WS   /ws-bin    timeout=5 binary=blob $LIBTEST filter
		WS   /ws-crash  $FIX/segv
		WS   /ws-slow   timeout=1 $FIX/sleeper $W/ws-sleeper.pids
		POST /echo      $LIBTEST filter
	EOF
	start_server ws "$W/ws.routes" --max-body 1024 --ws-idle-timeout 1
}

teardown_file() {
	httpd_stop_all
	local n
	for n in main missing load ws; do
		wait_until 10 no_marked_pids "$n" || true
	done
	unde_teardown_file
}

setup() {
	rm -f "$W/starts" "$W/sleeper.pids"
}

# raw REQUEST [rawhttp.py OPTION...] — send REQUEST to the main server.
raw() {
	run python3 "$FIX/rawhttp.py" "$MAIN_PORT" "$@"
	assert_success
}

# post_req PATH BODY — one POST request as raw takes it, its
# Content-Length counted in bytes
post_req() {
	local LC_ALL=C
	printf 'POST %s HTTP/1.1\\r\\nHost: t\\r\\nContent-Length: %d\\r\\n\\r\\n%s' "$1" "${#2}" "$2"
}

# post PATH JSON [curl OPTION...] — POST to the main server; sets output to
# "STATUS BODY", headers in $W/h.
post() {
	local path=$1 data=$2
	shift 2
	run curl -sS --max-time 10 -D "$W/h" -o "$W/body" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "$data" "$@" \
		"http://127.0.0.1:$MAIN_PORT$path"
	assert_success
	output="$output $(cat "$W/body")"
}

# metric SERVER SERIES — the value of one exposition line, 0 when absent.
metric() {
	local v
	v=$(curl -sS --max-time 10 "http://127.0.0.1:$(port_of "$1")/metrics" |
		awk -v s="$2" 'index($0, s " ") == 1 { print $NF }')
	echo "${v:-0}"
}

port_of() {
	local v=${1^^}_PORT
	echo "${!v}"
}

# Processes (live, or orphaned) started for server NAME.
marked_pids() {
	grep -lsxFz "HTTPD_T_MARK=$MARK-$1" /proc/[0-9]*/environ 2>/dev/null |
		sed 's|/proc/\([0-9]*\)/environ|\1|' | grep -vx "$$" || true
}

no_marked_pids() { [[ -z $(marked_pids "$1") ]]; }
# starts_are FILE N — count-starts noted N starts in FILE
starts_are() { [ -e "$1" ] && [ "$(wc -l <"$1")" -eq "$2" ]; }

# metric_at_least SERVER SERIES N — the series has reached N.
metric_at_least() { [ "$(metric "$1" "$2")" -ge "$3" ]; }

# ---------------------------------------------------------------- basics

@test "--help prints the usage and --version the version" {
	run unde-httpd --help
	assert_success
	assert_output --partial 'usage: unde-httpd --routes FILE'
	assert_output --partial -- '--read-timeout SECONDS'
	run unde-httpd --version
	assert_success
	assert_output 'unde-httpd 0.1.0'
}

@test "unde-httpd loads neither libpq nor libcurl: it starts for every connection" {
	# their ~25 libraries cost each start ~4 ms of CPU (bench/httpd/start)
	run ldd "$(command -v unde-httpd)"
	assert_success
	assert_output --partial libjansson
	refute_output --partial libpq
	refute_output --partial libcurl
}

@test "an unknown option, or an option's bad value, exits 64 naming the option" {
	run --separate-stderr unde-httpd --routes "$W/main.routes" --no-such-option </dev/null
	assert_failure 64
	[[ $stderr == *'"unknown option --no-such-option"'* ]]
	run --separate-stderr unde-httpd --routes "$W/main.routes" --read-timeout 0 --check
	assert_failure 64
	[[ $stderr == *'"option":"read-timeout"'*'"value":"0"'* ]]
	run --separate-stderr unde-httpd --routes "$W/main.routes" --max-body many --check
	assert_failure 64
	[[ $stderr == *'"option":"max-body"'* ]]
	# the variable is still read when the option is not given, and checked
	UNDE_HTTPD_MAX_BODY=many run --separate-stderr unde-httpd --routes "$W/main.routes" --check
	assert_failure 78
	[[ $stderr == *UNDE_HTTPD_MAX_BODY* ]]
}

@test "a bad routes file is refused at start with its line number and exit 78" {
	printf '# fine\nPOST /ok cat\nPOST /a/../b cat\n' >"$W/bad1.routes"
	run --separate-stderr unde-httpd --routes "$W/bad1.routes" </dev/null
	assert_failure 78
	[[ $stderr == *"bad1.routes:3:"*"segment"* ]]
	printf 'POST /ok cat\nPOST /ok cat\n' >"$W/bad2.routes"
	run --separate-stderr unde-httpd --routes "$W/bad2.routes" --check
	assert_failure 78
	[[ $stderr == *"bad2.routes:2: duplicate route POST /ok (first on line 1)"* ]]
	printf 'post /x cat\n' >"$W/bad3.routes"
	run --separate-stderr unde-httpd --routes "$W/bad3.routes" --check
	assert_failure 78
	[[ $stderr == *"bad3.routes:1: method"* ]]
	printf 'POST /x timeout=abc cat\n' >"$W/bad4.routes"
	run --separate-stderr unde-httpd --routes "$W/bad4.routes" --check
	assert_failure 78
	[[ $stderr == *"bad4.routes:1: timeout"* ]]
	printf 'POST /x\n' >"$W/bad5.routes"
	run --separate-stderr unde-httpd --routes "$W/bad5.routes" --check
	assert_failure 78
	[[ $stderr == *"bad5.routes:1: expected METHOD PATH COMMAND"* ]]
	printf 'GET /health cat\n' >"$W/bad6.routes"
	run --separate-stderr unde-httpd --routes "$W/bad6.routes" --check
	assert_failure 78
	[[ $stderr == *"bad6.routes:1: path is served by unde-httpd itself"* ]]
	run unde-httpd --routes "$W/main.routes" --check
	assert_success
	assert_output --partial '32 routes'
}

@test "a POST body reaches the command as one JSON line with request_id, and its answer is the response" {
	post /echo '{"text":"hi","n":1.10}'
	assert_output --regexp '^200 '
	output=${output#200 }
	assert_jq '.text == "hi" and .seen == true and (.request_id | length) == 36'
	# the client's number is passed as written, not reformatted
	[[ $output == *'"n":1.10'* ]]
	grep -qi '^content-type: application/json' "$W/h"
	rid=$(sed -n 's/^x-request-id: \(.*\)\r$/\1/ip' "$W/h")
	assert_jq --arg r "$rid" '.request_id == $r'
}

@test "the X-Request-Id of the request is carried to the command and back" {
	post /echo '{"a":1}' -H 'X-Request-Id: req-42.abc'
	output=${output#200 }
	assert_jq '.request_id == "req-42.abc"'
	grep -qix 'x-request-id: req-42.abc.' "$W/h"
	# a hostile id is replaced, never echoed into a header
	post /echo '{"a":1}' -H 'X-Request-Id: bad id<script>'
	output=${output#200 }
	assert_jq '.request_id != "bad id<script>" and (.request_id | length) == 36'
}

@test "query parameters of a GET reach the command as string fields" {
	run curl -sS --max-time 10 "http://127.0.0.1:$MAIN_PORT/query?user_id=u%201&n=5&flag"
	assert_success
	assert_jq '.user_id == "u 1" and .n == "5" and .flag == "" and .seen == true'
}

@test "a query parameter that repeats a body field is refused with 400" {
	run curl -sS --max-time 10 -w ' %{http_code}' -X PUT --data-binary '{"a":"x"}' \
		"http://127.0.0.1:$MAIN_PORT/echo-put?a=y"
	assert_output --regexp ' 400$'
	[[ $output == *"repeated, reserved or also in the body"* ]]
}

@test "an error line from the command answers 400 for bad data and 503 for an unavailable upstream" {
	post /echo '{"fail":"data"}'
	assert_output --regexp '^400 '
	output=${output#400 }
	assert_jq '.error.code == "invalid_field" and (.request_id | length) > 0'
	post /echo '{"fail":"unavailable"}'
	assert_output --regexp '^503 '
	post /echo '{"fail":"temp"}'
	assert_output --regexp '^503 '
}

@test "a command exiting 64 or 65 answers 400, 69 or 75 answers 503, any other status 500" {
	local path want
	for path in exit64:400 exit65:400 exit69:503 exit75:503 exit3:500; do
		want=${path#*:}
		post "/${path%:*}" '{}'
		assert_output --regexp "^$want "
		output=${output#"$want "}
		assert_jq '.error.code == "command_failed" and (.error.message | test("exited with status")) and (.request_id | length) > 0'
	done
}

@test "a command that crashes answers 500 naming the signal" {
	post /crash '{}'
	assert_output --regexp '^500 '
	output=${output#500 }
	assert_jq '.error.code == "command_crashed" and (.error.message | test("signal 11"))'
}

@test "a command that does not answer within the route's timeout gets 504 and is killed with its helpers" {
	post /slow '{}'
	assert_output --regexp '^504 '
	output=${output#504 }
	assert_jq '.error.code == "timeout"'
	read -r shell_pid helper_pid <"$W/sleeper.pids"
	wait_until 5 bash -c "! kill -0 $shell_pid 2>/dev/null && ! kill -0 $helper_pid 2>/dev/null"
}

@test "a command answering with something that is not JSON gets 500" {
	post /garbage '{}'
	assert_output --regexp '^500 '
	output=${output#500 }
	assert_jq '.error.code == "bad_answer"'
}

# ------------------------------------------------------- answer integrity

@test "an answer that only looks like JSON is a 500, never sent as application/json" {
	local kind
	for kind in notjson twoobj badutf8; do
		post "/line/$kind" '{}'
		assert_output --regexp '^500 '
		output=${output#500 }
		assert_jq '.error.code == "bad_answer"'
		[[ $output != *'"a":1'* && $output != *'not json'* ]]
	done
}

@test "an error key written with escapes is read as an error: 503 for status 69" {
	post /line/escerr '{}'
	assert_output --regexp '^503 '
}

@test "an answer without this request's request_id is a 500 and the connection closes" {
	local kind
	for kind in norid otherrid; do
		post "/line/$kind" '{}'
		assert_output --regexp '^500 '
		output=${output#500 }
		assert_jq '.error.code == "unasked_answer"'
		grep -qix 'connection: close.' "$W/h"
	done
}

@test "a late line for the previous request never reaches the next one: 500, closed, command stopped" {
	local a='POST /late HTTP/1.1\r\nHost: t\r\nX-Request-Id: first\r\nContent-Length: 2\r\n\r\n{}'
	local b='POST /late HTTP/1.1\r\nHost: t\r\nX-Request-Id: second\r\nContent-Length: 2\r\n\r\n{}'
	raw "$a$b" --count 2 --check-close
	assert_jq '.responses[0].status == 200 and (.responses[0].body | fromjson | .request_id == "first")'
	assert_jq '.responses[1].status == 500 and (.responses[1].body | fromjson | .error.code == "unasked_answer" and .request_id == "second")'
	assert_jq '.eof == true'
}

@test "two answers to one request are the command failing, not an answer for the next request" {
	local a='POST /twice HTTP/1.1\r\nHost: t\r\nX-Request-Id: one\r\nContent-Length: 2\r\n\r\n{}'
	local b='POST /twice HTTP/1.1\r\nHost: t\r\nX-Request-Id: two\r\nContent-Length: 2\r\n\r\n{}'
	raw "$a$b" --count 2 --check-close
	# whatever is answered 200 is that request's own; a 500 closes
	assert_jq '[.responses[] | select(.status == 200) | (.body | fromjson | .request_id) == .headers["x-request-id"]] | all'
	assert_jq '[.responses[] | select(.status == 500) | .body | fromjson | .error.code] | index("unasked_answer") != null'
	assert_jq '.eof == true'
}

@test "a streaming line for another request ends the stream with an error" {
	run curl -sS --max-time 10 -w '\n%{http_code}' --data-binary '{}' \
		"http://127.0.0.1:$MAIN_PORT/stream-foreign"
	assert_success
	assert_line --index 1 500
	[[ $output != *someone-else* ]]
}

@test "a command that answers before reading all of a large body gets its answer, not a 504" {
	head -c 1000000 /dev/zero | tr '\0' 7 | sed 's/^/{"a":"/; s/$/"}/' >"$W/big.json"
	local t0=$EPOCHREALTIME
	post /early "@$W/big.json" -H 'X-Request-Id: early-1'
	assert_output --regexp '^200 '
	output=${output#200 }
	assert_jq '.early == true and .request_id == "early-1"'
	# well inside the route's 5 s timeout, and the command is not left behind
	(( ${EPOCHREALTIME/[.,]/} - ${t0/[.,]/} < 4500000 ))
	wait_until 10 bash -c "! pgrep -f '[m]isbehave early' >/dev/null"
}

@test "processes a command started die with it when it exits, not only on a timeout" {
	rm -f "$W/spawned.pid"
	post /spawn-exit '{}'
	assert_output --regexp '^500 '
	[[ -s $W/spawned.pid ]]
	wait_until 5 bash -c "! kill -0 $(<"$W/spawned.pid") 2>/dev/null"
}

@test "a body's own request_id is replaced in its text: its numbers keep their digits" {
	post /verbatim '{"request_id":"not ok id","n":1.10,"m":[0.1,1e5,-0.0],"s":"x"}' -H 'X-Request-Id: r-keep'
	assert_output '200 {"request_id":"r-keep","n":1.10,"m":[0.1,1e5,-0.0],"s":"x"}'
	# an escaped key is the same key: replaced, never duplicated
	post /verbatim '{"request\u005fid":"x y","n":2.50}' -H 'X-Request-Id: r-esc'
	assert_output '200 {"request\u005fid":"r-esc","n":2.50}'
	# query fields go in front; the body's text follows as sent
	post '/verbatim?q=1' '{"request_id":7,"n":3.10}' -H 'X-Request-Id: r-q'
	assert_output '200 {"q":"1","request_id":"r-q","n":3.10}'
	post /verbatim '{"n":4.10}' -H 'X-Request-Id: r-new'
	assert_output '200 {"request_id":"r-new","n":4.10}'
}

@test "a body is checked without being rebuilt: duplicates at any depth, bad escapes and trailing data are 400" {
	local b
	for b in '{"a":1,"a":2}' '{"x":{"b":1,"b":2}}' '{"a\u0062":1,"ab":2}' '{"a":"\u0000"}' \
		'{"a":"\ud800"}' '{"a":01}' '{"a":1}{"b":2}' '{"a":[1,]}' '[1]' '{"a":tru}'; do
		post /verbatim "$b"
		assert_output --regexp '^400 '
		output=${output#400 }
		assert_jq '.error.code == "invalid_body"'
	done
	post /verbatim '{"a":{"b":1},"b":{"b":[1.50,-0,2E+3,"\ud83d\ude00",true,null]}}' -H 'X-Request-Id: ok-1'
	assert_output '200 {"request_id":"ok-1","a":{"b":1},"b":{"b":[1.50,-0,2E+3,"\ud83d\ude00",true,null]}}'
}

@test "a repeated multibyte query key is refused with a readable 400 carrying the request_id" {
	local k
	k=$(printf '%%E2%%82%%AC%.0s' {1..30}) # 90 bytes: 64 cuts inside a character
	run curl -sS --max-time 10 -w ' %{http_code}' -G --data "$k=1" --data "$k=2" \
		"http://127.0.0.1:$MAIN_PORT/query"
	assert_output --regexp ' 400$'
	output=${output% 400}
	assert_jq '(.request_id | length) == 36 and (.error.message | test("repeated"))'
	[[ $output != *'out of memory'* ]]
}

@test "an access-log line over 16 KiB is written whole, one JSON object per line" {
	local p before
	# 8100 backslashes: each one is two bytes in the log's JSON
	p=$(head -c 8100 /dev/zero | tr '\0' '\\')
	printf 'GET /%s HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' "$p" >"$W/longlog.req"
	before=$(wc -l <"$W/main.log")
	raw "@$W/longlog.req" --count 2
	assert_jq '[.responses[].status] == [400, 200]'
	wait_until 5 bash -c "[ \$(tail -n +$((before + 1)) '$W/main.log' | grep -c '\"msg\":\"request\"') -ge 2 ]"
	# (lines not starting with { are systemd-socket-activate's own)
	tail -n +$((before + 1)) "$W/main.log" | grep '^{' | while IFS= read -r l; do
		jq_e . <<<"$l" >/dev/null || { echo "not JSON: ${l:0:200}" >&2; exit 1; }
	done
	tail -n +$((before + 1)) "$W/main.log" | grep '^{' | jq -se 'map(select(.msg == "request")) | (.[0].path | length) == 8101 and .[1].path == "/health"'
	(( $(tail -n +$((before + 1)) "$W/main.log" | grep '"msg":"request"' | head -1 | wc -c) > 16384 ))
}

@test "keep-alive: many requests on one connection are served by one command process" {
	local u=http://127.0.0.1:$MAIN_PORT/count
	run curl -sS --max-time 10 -w '%{num_connects}\n' -H 'Content-Type: application/json' \
		--data-binary '{"i":1}' "$u" "$u" "$u" "$u" "$u"
	assert_success
	[ "$(grep -c '"seen":true' <<<"$output")" -eq 5 ]
	# curl opened one connection for the five requests...
	[ "$(grep -cx 1 <<<"$output")" -eq 1 ]
	# ...and behind it the command was started once
	[ "$(wc -l <"$W/starts")" -eq 1 ]
	# a second connection gets a process of its own
	post /count '{}'
	[ "$(wc -l <"$W/starts")" -eq 2 ]
}

@test "start=early: the first request starts the other early routes' commands, used when asked" {
	cat >"$W/early.routes" <<-EOF
		POST /a   start=early   $FIX/count-starts $W/early-a $LIBTEST filter
		POST /b   start=early   $FIX/count-starts $W/early-b $LIBTEST filter
		POST /c                 $FIX/count-starts $W/early-c $LIBTEST filter
	EOF
	rm -f "$W"/early-?
	start_server early "$W/early.routes"
	local u=http://127.0.0.1:$EARLY_PORT
	# /health alone starts nothing
	curl -fsS --max-time 10 "$u/health" >/dev/null
	# /a, then /b on the same connection: each command started once, /b's
	# before it was asked (it was already running); /c never
	run curl -sS --max-time 10 -w '%{num_connects}\n' -H 'Content-Type: application/json' \
		--data-binary '{"i":1}' "$u/a" "$u/b"
	assert_success
	[ "$(grep -c '"seen":true' <<<"$output")" -eq 2 ]
	[ "$(wc -l <"$W/early-a")" -eq 1 ]
	[ "$(wc -l <"$W/early-b")" -eq 1 ]
	[ ! -e "$W/early-c" ]
	# a connection that asks only /c starts only /c's (it is not early)
	curl -fsS --max-time 10 -H 'Content-Type: application/json' --data-binary '{}' "$u/c" >/dev/null
	[ "$(wc -l <"$W/early-c")" -eq 1 ]
	[ "$(wc -l <"$W/early-b")" -eq 1 ]
	# one that asks only /a has /b's started too
	curl -fsS --max-time 10 -H 'Content-Type: application/json' --data-binary '{}' "$u/a" >/dev/null
	wait_until 10 starts_are "$W/early-b" 2
	[ "$(wc -l <"$W/early-a")" -eq 2 ]
	httpd_stop early
	printf 'POST /x start=early stream: cat\n' >"$W/bad-early1.routes"
	run --separate-stderr unde-httpd --routes "$W/bad-early1.routes" --check
	assert_failure 78
	[[ $stderr == *"bad-early1.routes:1: start=early keeps a command for the connection"* ]]
	printf 'POST /x start=soon cat\n' >"$W/bad-early2.routes"
	run --separate-stderr unde-httpd --routes "$W/bad-early2.routes" --check
	assert_failure 78
	[[ $stderr == *"bad-early2.routes:1: start= takes early or first-use"* ]]
}

@test "pipelined requests on one connection are answered in order by one process" {
	local r='POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n'
	raw "$r{\"i\":1}$r{\"i\":2}$r{\"i\":3}" --count 3
	assert_jq '[.responses[].status] == [200,200,200]'
	assert_jq '[.responses[].body | fromjson | .i] == [1,2,3]'
	[ "$(wc -l <"$W/starts")" -eq 1 ]
}

@test "Connection: close is honoured: one answer, then the server closes" {
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}' --check-close
	assert_jq '.responses[0].status == 200 and .responses[0].headers.connection == "close" and .eof'
}

@test "an HTTP/1.0 request is answered and the connection closed" {
	raw 'POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}' --check-close
	assert_jq '.responses[0].status == 200 and .eof and (.responses[0].body | fromjson | .seen)'
}

@test "a kept-alive connection left idle is closed after the keep-alive timeout" {
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' --check-close --timeout 8
	assert_jq '.responses[0].status == 200 and .responses[0].headers.connection == "keep-alive"'
	assert_jq '.eof and .elapsed >= 2.5 and .elapsed < 6'
}

@test "a streaming route sends progress lines then the record as chunked application/x-ndjson" {
	run curl -sS --max-time 10 -D "$W/h" --data-binary '{"stages":3}' \
		"http://127.0.0.1:$MAIN_PORT/stream"
	assert_success
	grep -qi '^transfer-encoding: chunked' "$W/h"
	grep -qi '^content-type: application/x-ndjson' "$W/h"
	assert_json_line_count 4
	assert_jq -s '[.[].stage] == ["progress","progress","progress","done"]'
}

@test "a streaming route delivers each line at once, before the command has finished" {
	mkfifo "$W/gate"
	python3 "$FIX/rawhttp.py" "$MAIN_PORT" \
		'POST /gated HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' \
		--mark-first "$W/first-came" >"$W/stream.out" 3>&- &
	local client=$!
	wait_until 10 test -e "$W/first-came"
	# the command is still blocked on its gate, yet the first line arrived
	[ ! -s "$W/stream.out" ]
	echo go >"$W/gate"
	wait "$client"
	output=$(cat "$W/stream.out")
	assert_jq '.responses[0].chunks | map(fromjson | .stage) == ["first","done"]'
}

@test "a streaming route whose command fails before writing answers with the mapped error" {
	# libtest in online mode answers a failed record with an error line
	run curl -sS --max-time 10 -w ' %{http_code}' --data-binary '{"fail":"unavailable"}' \
		"http://127.0.0.1:$MAIN_PORT/stream"
	assert_output --regexp ' 503$'
}

@test "a keep=connection stream serves a connection's requests from one command, each ending at its done line" {
	rm -f "$W/kept-starts"
	raw "$(post_req /kept '{"stages":2}')$(post_req /kept '{"stages":1}')" --count 2
	assert_jq '[.responses[].status] == [200,200]'
	assert_jq '[.responses[].headers["transfer-encoding"]] == ["chunked","chunked"]'
	assert_jq '.responses[0].chunks | map(fromjson | .stage) == ["progress","progress","done"]'
	assert_jq '.responses[1].chunks | map(fromjson | .stage) == ["progress","done"]'
	starts_are "$W/kept-starts" 1
	# another connection has a command of its own
	raw "$(post_req /kept '{"stages":1}')"
	assert_jq '.responses[0].status == 200'
	starts_are "$W/kept-starts" 2
}

@test "a keep=connection stream whose command answers an error keeps the command for the next request" {
	rm -f "$W/kept-starts"
	raw "$(post_req /kept '{"fail":"unavailable"}')$(post_req /kept '{"stages":1}')" --count 2
	assert_jq '.responses[0].status == 503 and (.responses[0].body | fromjson | .error.code == "upstream_unavailable")'
	assert_jq '.responses[1].status == 200 and (.responses[1].chunks | map(fromjson | .stage) == ["progress","done"])'
	starts_are "$W/kept-starts" 1
}

@test "a keep=connection stream whose command writes past its answer is stopped and the connection closed" {
	local r
	r=$(post_req /kept-twice '{}')
	raw "$r$r" --count 2 --check-close
	assert_jq '.responses | length == 1'
	assert_jq '.responses[0].status == 200 and (.responses[0].chunks | map(fromjson | .n) == [1])'
	assert_jq '.eof == true'
}

@test "a keep=connection stream whose command exits before its answer ends with an error line, and the next request starts another" {
	rm -f "$W/once-starts"
	local r
	r=$(post_req /kept-once '{}')
	raw "$r$r" --count 2
	assert_jq '[.responses[].status] == [200,200]'
	assert_jq '[.responses[].chunks | map(fromjson | .stage // .error.code)] == [["first","command_failed"],["first","command_failed"]]'
	starts_are "$W/once-starts" 2
}

@test "keep= is refused on a plain route and takes only connection or request" {
	printf 'POST /x keep=connection cat\n' >"$W/bad-keep1.routes"
	run --separate-stderr unde-httpd --routes "$W/bad-keep1.routes" --check
	assert_failure 78
	[[ $stderr == *"bad-keep1.routes:1: keep=connection is for a stream: route"* ]]
	printf 'POST /x keep=forever stream: cat\n' >"$W/bad-keep2.routes"
	run --separate-stderr unde-httpd --routes "$W/bad-keep2.routes" --check
	assert_failure 78
	[[ $stderr == *"bad-keep2.routes:1: keep= takes connection or request"* ]]
	printf 'POST /x keep=request stream: cat\n' >"$W/ok-keep.routes"
	run unde-httpd --routes "$W/ok-keep.routes" --check
	assert_success
}

@test "GET /health answers 200 {\"status\":\"ok\"} when every command exists" {
	run curl -sS --max-time 10 -w ' %{http_code}' "http://127.0.0.1:$MAIN_PORT/health"
	assert_output '{"status":"ok"}
 200'
}

@test "GET /health answers 503 naming a route's missing command" {
	run curl -sS --max-time 10 -w ' %{http_code}' "http://127.0.0.1:$MISSING_PORT/health"
	assert_output --regexp ' 503$'
	output=${output% 503}
	assert_jq '.status == "unavailable" and .missing == ["unde-no-such-command-here"]'
}

@test "a request to a route whose command is missing answers 503" {
	run curl -sS --max-time 10 -w ' %{http_code}' --data-binary '{}' \
		"http://127.0.0.1:$MISSING_PORT/analyze"
	assert_output --regexp ' 503$'
	output=${output% 503}
	assert_jq '.error.code == "command_missing"'
}

@test "POST /health answers 405 with Allow: GET" {
	raw 'POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n'
	assert_jq '.responses[0].status == 405 and .responses[0].headers.allow == "GET"'
}

@test "an answer to HEAD has a head and no body, so the next answer stays in step" {
	raw 'HEAD /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n' \
		--count 2 --head-answers 1
	assert_jq '.responses[0].status == 405 and .responses[0].body == ""'
	assert_jq '.responses[1].status == 200 and .responses[1].body == "{\"status\":\"ok\"}\n"'
	printf 'HEAD /x cat\n' >"$W/head.routes"
	run unde-httpd --routes "$W/head.routes" --check
	assert_failure 78
}

@test "GET /metrics counts requests by route and status across connections" {
	local series='unde_httpd_requests_total{route="POST /echo",status="200"}'
	local hist='unde_httpd_request_duration_seconds_count{route="POST /echo"}'
	local bad='unde_httpd_requests_total{route="unmatched",status="404"}'
	local conns=unde_httpd_connections_total
	local b0 h0 n0 c0
	b0=$(metric main "$series") h0=$(metric main "$hist") n0=$(metric main "$bad")
	c0=$(metric main "$conns")
	for i in 1 2 3; do post /echo '{}'; done
	run curl -s -o /dev/null "http://127.0.0.1:$MAIN_PORT/nowhere"
	[ "$(metric main "$series")" -eq $((b0 + 3)) ]
	[ "$(metric main "$hist")" -eq $((h0 + 3)) ]
	[ "$(metric main "$bad")" -eq $((n0 + 1)) ]
	# four connections, plus the /metrics calls themselves
	[ "$(metric main "$conns")" -ge $((c0 + 4)) ]
	run curl -sS -D "$W/h" "http://127.0.0.1:$MAIN_PORT/metrics"
	grep -qi '^content-type: text/plain; version=0.0.4' "$W/h"
	assert_output --partial '# TYPE unde_httpd_request_duration_seconds histogram'
	assert_output --partial 'unde_httpd_request_duration_seconds_bucket{route="POST /echo",le="+Inf"}'
}

@test "every request writes one access-log JSON line with method, path, status, bytes, duration and request_id" {
	post /echo '{"x":1}' -H 'X-Request-Id: log-line-test-1'
	wait_until 5 grep -q '"request_id":"log-line-test-1"' "$W/main.log"
	run jq -c 'select(.request_id == "log-line-test-1" and .msg == "request")' <(grep '^{' "$W/main.log")
	assert_json_line_count 1
	assert_jq '.method == "POST" and .path == "/echo" and .status == 200 and .bytes > 10 and .duration_ms > 0 and .route == "POST /echo" and .cmd == "unde-httpd"'
}

@test "the command sees neither the request headers nor the superserver's descriptors" {
	post /env '{"a":1}' -H 'Authorization: Bearer secret-token' -H 'Cookie: s=1' \
		-H 'X-Forwarded-For: 10.0.0.1'
	assert_output --regexp '^200 '
	output=${output#200 }
	assert_jq '.record | keys == ["a","request_id"]'
	assert_jq '.online == "1"'
	assert_jq '[.env[] | select(test("^(HTTP_|LISTEN_|AUTHORIZATION|COOKIE)"; "i"))] == []'
	refute_output --partial 'secret-token'
	# stdin and stdout are its pipes, stderr the log: nothing else is open
	assert_jq '[.fds | to_entries[] | select(.value | test("^/proc/") | not) | .key] | sort == ["0","1","2"]'
	assert_jq '.fds["0"] | test("^pipe:")'
	assert_jq '.fds["1"] | test("^pipe:")'
}

# ----------------------------------------------------------- strictness

@test "a request with both Content-Length and Transfer-Encoding is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n' --check-close
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("both Content-Length and Transfer-Encoding")) and .eof'
	[ ! -e "$W/starts" ]
}

@test "differing duplicate Content-Lengths are refused with 400, identical ones accepted" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} '
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("differing Content-Length"))'
	[ ! -e "$W/starts" ]
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}'
	assert_jq '.responses[0].status == 200'
}

@test "a non-numeric Content-Length is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 2x\r\n\r\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("not a non-negative number"))'
	[ ! -e "$W/starts" ]
}

@test "a negative Content-Length is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: -2\r\n\r\n{}'
	assert_jq '.responses[0].status == 400'
	[ ! -e "$W/starts" ]
}

@test "an obs-folded header line is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("line folding"))'
	[ ! -e "$W/starts" ]
}

@test "a bare CR in the head is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\rX-A: b\r\nContent-Length: 2\r\n\r\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("bare CR"))'
	[ ! -e "$W/starts" ]
}

@test "a bare LF line ending is refused with 400" {
	raw 'POST /count HTTP/1.1\nHost: t\nContent-Length: 2\n\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("bare LF"))'
}

@test "a NUL byte in the head is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("NUL"))'
	[ ! -e "$W/starts" ]
}

@test "whitespace between a header name and its colon is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length : 2\r\n\r\n{}'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("between header field name and colon"))'
	[ ! -e "$W/starts" ]
}

@test "a request line over the limit is refused with 431" {
	local long
	long=$(printf 'a%.0s' {1..9000})
	raw "GET /query?x=$long HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n" --check-close
	assert_jq '.responses[0].status == 431 and (.responses[0].body | test("request line too long")) and .eof'
}

@test "a header section over the limit is refused with 431" {
	local h
	h=$(printf 'X-Filler: %0500d\\r\\n' {1..40})
	raw "POST /count HTTP/1.1\\r\\nHost: t\\r\\n${h}Content-Length: 2\\r\\n\\r\\n{}" --check-close
	assert_jq '.responses[0].status == 431 and .eof'
	[ ! -e "$W/starts" ]
}

@test "a body over the limit (1 MiB by default) is refused with 413" {
	head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$W/big"
	run curl -sS --max-time 10 -w ' %{http_code}' --data-binary "@$W/big" \
		"http://127.0.0.1:$MAIN_PORT/count"
	assert_output --regexp ' 413$'
	[ ! -e "$W/starts" ]
	# exactly the limit is fine (whitespace around a JSON object)
	{ printf '{}'; head -c $((1024 * 1024 - 2)) /dev/zero | tr '\0' ' '; } >"$W/max"
	run curl -sS --max-time 10 -w ' %{http_code}' --data-binary "@$W/max" \
		"http://127.0.0.1:$MAIN_PORT/echo"
	assert_output --regexp ' 200$'
}

@test "a chunked request body is decoded for the command" {
	run curl -sS --max-time 10 -H 'Transfer-Encoding: chunked' --data-binary '{"chunked":true}' \
		"http://127.0.0.1:$MAIN_PORT/echo"
	assert_success
	assert_jq '.chunked == true and .seen == true'
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\n{"a\r\n5\r\n":12}\r\n0\r\nX-Trailer: dropped\r\n\r\n'
	assert_jq '.responses[0].status == 200 and (.responses[0].body | fromjson | .a == 12)'
}

@test "a chunked request body over the limit is refused with 413" {
	head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' >"$W/big"
	run curl -sS --max-time 10 -w ' %{http_code}' -H 'Transfer-Encoding: chunked' \
		--data-binary "@$W/big" "http://127.0.0.1:$MAIN_PORT/count"
	assert_output --regexp ' 413$'
	[ ! -e "$W/starts" ]
}

@test "a malformed chunked body is refused with 400" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'
	assert_jq '.responses[0].status == 400'
	[ ! -e "$W/starts" ]
}

@test "a transfer coding other than chunked is refused with 501, one not ending in chunked with 400" {
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'
	assert_jq '.responses[0].status == 501'
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'
	assert_jq '.responses[0].status == 400'
}

@test "an HTTP/1.1 request without Host, or with two, is refused with 400" {
	raw 'GET /health HTTP/1.1\r\n\r\n'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("missing Host"))'
	raw 'GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'
	assert_jq '.responses[0].status == 400'
}

@test "an invalid Host value is refused with 400, valid hosts, IP literals and ports accepted" {
	local h
	for h in 'a b' '@@@' 'x:99999999' 'x:80a' '[::1' 'a%zz' 'u@host'; do
		raw "GET /health HTTP/1.1\r\nHost: $h\r\n\r\n"
		assert_jq '.responses[0].status == 400 and (.responses[0].body | test("invalid Host"))'
	done
	for h in 'example.com' 'example.com:8080' '127.0.0.1:1' '[::1]:65535' 'a-b_c~d.e%41' ''; do
		raw "GET /health HTTP/1.1\r\nHost: $h\r\n\r\n"
		assert_jq '.responses[0].status == 200'
	done
}

@test "an unsupported HTTP version is refused with 505, a malformed request line with 400" {
	raw 'GET /health HTTP/2.0\r\nHost: t\r\n\r\n'
	assert_jq '.responses[0].status == 505'
	raw 'GET  /health HTTP/1.1\r\nHost: t\r\n\r\n'
	assert_jq '.responses[0].status == 400'
	raw 'GET http://t/health HTTP/1.1\r\nHost: t\r\n\r\n'
	assert_jq '.responses[0].status == 400 and (.responses[0].body | test("origin-form"))'
}

@test "a client that sends its head too slowly gets 408, even trickling a byte at a time" {
	# nothing after the first line
	raw 'POST /count HTTP/1.1\r\nHost: t\r\n' --check-close --timeout 5
	assert_jq '.responses[0].status == 408 and .eof and .elapsed < 3'
	# one byte every 0.2 s keeps arriving, but the deadline is for the whole head
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nContent-Length: 2\r\n\r\n{}' \
		--trickle 0.2 --check-close --timeout 8
	assert_jq '.responses[0].status == 408 and .eof and .sent_all == false and .elapsed < 3'
	[ ! -e "$W/starts" ]
}

@test "a client that sends its body too slowly gets 408 and the half-read request never reaches the command" {
	raw 'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{"a":' --check-close --timeout 5
	assert_jq '.responses[0].status == 408 and .eof'
	[ ! -e "$W/starts" ]
}

@test "a client that leaves half-way through its body gets nothing passed on" {
	run python3 "$FIX/rawhttp.py" "$MAIN_PORT" \
		'POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{"a":1}' --timeout 0.3
	assert_success
	assert_jq '.responses == []'
	# the server is still fine, and nothing was started for the torn request
	post /echo '{}'
	assert_output --regexp '^200 '
	[ ! -e "$W/starts" ]
}

@test "a connection that sends nothing is cut off with 408 after the read timeout" {
	raw '' --check-close --timeout 5
	assert_jq '.responses[0].status == 408 and .eof and .elapsed < 3'
}

@test "an unknown path answers 404" {
	run curl -sS --max-time 10 -w ' %{http_code}' --data-binary '{}' \
		"http://127.0.0.1:$MAIN_PORT/nothing/here"
	assert_output --regexp ' 404$'
	output=${output% 404}
	assert_jq '.error.code == "not_found" and (.request_id | length) > 0'
}

@test "a wrong method on a known path answers 405 with Allow" {
	raw 'DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n'
	assert_jq '.responses[0].status == 405 and .responses[0].headers.allow == "POST"'
	raw 'GET /echo-put HTTP/1.1\r\nHost: t\r\n\r\n'
	assert_jq '.responses[0].headers.allow == "PUT"'
}

@test "a body that is not a JSON object is refused with 400 and the connection kept" {
	local r='POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n'
	raw "${r}nojsn${r}[1,2]${r}{\"a\"}" --count 3
	assert_jq '[.responses[].status] == [400,400,400]'
	assert_jq '.responses[0].body | fromjson | .error.code == "invalid_body"'
	[ ! -e "$W/starts" ]
	post /count '{"a":1,"a":2}'
	assert_output --regexp '^400 '
}

@test "path traversal and dot segments never reach a command" {
	local p
	for p in '/a/../count' '/count/..' '/%2e%2e/count' '/x/%2E./count' '/a%2fcount' '/./count' '/a\\b'; do
		raw "POST $p HTTP/1.1\\r\\nHost: t\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
		assert_jq '.responses[0].status == 400'
	done
	[ ! -e "$W/starts" ]
}

@test "Expect: 100-continue is answered with 100 before the body" {
	# the head alone: 100 comes at once, then 408 as the body never does
	raw 'POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n' --timeout 5
	assert_jq '.informational == [100] and .responses[0].status == 408'
	head -c 4096 /dev/zero | tr '\0' ' ' >"$W/mid"
	printf '{"big":1}' >>"$W/mid"
	run curl -sS --max-time 10 -H 'Expect: 100-continue' --data-binary "@$W/mid" \
		"http://127.0.0.1:$MAIN_PORT/echo"
	assert_success
	assert_jq '.big == 1'
}

# ------------------------------------------------------------------ load

@test "200 concurrent connections are all answered without error and leave no process or descriptor behind" {
	local ssa fds0 fds1 c0 out
	ssa=$(<"$W/load.pid")
	fds0=$(ls /proc/"$ssa"/fd | wc -l)
	c0=$(metric load unde_httpd_connections_total)
	cat >"$W/post.lua" <<-'EOF'
		wrk.method = "POST"
		wrk.body = '{"hello":"world"}'
		wrk.headers["Content-Type"] = "application/json"
	EOF
	run wrk -t2 -c200 -d3s --timeout 10s -s "$W/post.lua" "http://127.0.0.1:$LOAD_PORT/echo"
	assert_success
	out=$output
	[[ $out != *"Socket errors"* ]] || fail "wrk saw socket errors: $out"
	[[ $out != *"Non-2xx"* ]] || fail "wrk saw error answers: $out"
	[[ $out =~ ([0-9]+)\ requests\ in ]] && ((BASH_REMATCH[1] >= 1)) || fail "no request answered: $out"
	# wrk stops at its deadline without counting what was still in flight,
	# so "all answered" is shown by 200 clients at once, each waiting for its
	# answer as long as it takes (slow under sanitizers on a loaded machine)
	seq 200 | xargs -P 200 -I{} curl -sS -o /dev/null -w '%{http_code}\n' --max-time 120 \
		-H 'Content-Type: application/json' --data '{"n":{}}' \
		"http://127.0.0.1:$LOAD_PORT/echo" >"$W/codes" || fail "a client failed: $(sort "$W/codes" | uniq -c)"
	[ "$(grep -cx 200 "$W/codes")" -eq 200 ] || fail "answers: $(sort "$W/codes" | uniq -c)"
	# all 200 connections were accepted and served (each counts itself as
	# it starts: on a loaded machine the last ones may still be starting)
	wait_until 20 metric_at_least load unde_httpd_connections_total $((c0 + 400)) ||
		fail "connections counted: $(metric load unde_httpd_connections_total), want $((c0 + 400))"
	[ "$(metric load 'unde_httpd_requests_total{route="POST /echo",status="500"}')" -eq 0 ]
	# afterwards: no unde-httpd, no command left (not even orphaned), no fd leaked
	wait_until 20 no_marked_pids load || fail "left behind: $(marked_pids load | xargs -r ps -o pid,ppid,args -p)"
	fds1=$(ls /proc/"$ssa"/fd | wc -l)
	[ "$fds1" -eq "$fds0" ]
	kill -0 "$ssa"
}

# ------------------------------------------------------------ binary answers

@test "a binary= route answers the decoded base64 member as the body, with the route's type" {
	printf 'ID3\x00\xff\xfe binary \r\n\x00 bytes' >"$W/blob.bin"
	b64=$(base64 -w0 "$W/blob.bin")
	post /binary "{\"blob\":\"$b64\"}" -H 'X-Request-Id: bin-1'
	assert_output "200 $(<"$W/body")"
	cmp "$W/blob.bin" "$W/body"
	grep -qi '^Content-Type: audio/mpeg' "$W/h"
	grep -qi "^Content-Length: $(stat -c %s "$W/blob.bin")" "$W/h"
	grep -qi '^X-Request-Id: bin-1' "$W/h"
	post /binary-plain '{"blob":"aGVsbG8="}'
	[[ $(<"$W/body") == hello ]]
	grep -qi '^Content-Type: application/octet-stream' "$W/h"
	# an empty string is an empty body
	post /binary '{"blob":""}'
	[[ ${output%% *} == 200 ]]
	[[ ! -s $W/body ]]
}

@test "a binary= route whose command answers no base64 member gets a JSON 500; its errors stay JSON" {
	post /binary '{"other":1}'
	[[ ${output%% *} == 500 ]]
	jq_e '.error.code == "bad_answer" and (.error.message|test("blob"))' "$W/body"
	grep -qi '^Content-Type: application/json' "$W/h"
	post /binary '{"blob":"not base64!"}'
	jq_e '.error.code == "bad_answer"' "$W/body"
	post /binary '{"blob":5}'
	jq_e '.error.code == "bad_answer"' "$W/body"
	# a record the command refuses is answered as its JSON error line
	post /binary '{"blob":"aGk=","fail":"data"}'
	[[ ${output%% *} == 400 ]]
	jq_e '.error.code == "invalid_field"' "$W/body"
	grep -qi '^Content-Type: application/json' "$W/h"
	post /binary '{"blob":"aGk=","fail":"unavailable"}'
	[[ ${output%% *} == 503 ]]
}

@test "route options binary= and type= are checked when the routes file is read" {
	printf 'POST /x type=audio/mpeg cat\n' >"$W/bin1.routes"
	run --separate-stderr unde-httpd --routes "$W/bin1.routes" --check
	assert_failure 78
	[[ $stderr == *"bin1.routes:1: type= needs binary=KEY"* ]]
	printf 'POST /x binary=a-b cat\n' >"$W/bin2.routes"
	run --separate-stderr unde-httpd --routes "$W/bin2.routes" --check
	assert_failure 78
	[[ $stderr == *"bin2.routes:1: binary="* ]]
	printf 'POST /x binary=a type=audio\r/mpeg cat\n' >"$W/bin3.routes"
	run --separate-stderr unde-httpd --routes "$W/bin3.routes" --check
	assert_failure 78
	printf 'POST /x binary=a type=text cat\n' >"$W/bin4.routes"
	run --separate-stderr unde-httpd --routes "$W/bin4.routes" --check
	assert_failure 78
	[[ $stderr == *"media type"* ]]
	printf 'POST /x binary=a stream: cat\n' >"$W/bin5.routes"
	run --separate-stderr unde-httpd --routes "$W/bin5.routes" --check
	assert_failure 78
	printf 'POST /x binary=a type=audio/mpeg cat\n' >"$W/bin6.routes"
	run -0 unde-httpd --routes "$W/bin6.routes" --check
}

# ------------------------------------------------------------ WebSocket

# ws CASE [ARG...] — the raw frame client (fixtures/httpd/wsraw.py) on /ws.
ws() {
	run timeout 30 /usr/bin/python3 "$FIX/wsraw.py" "$WS_PORT" "${WSPATH:-/ws}" "$@"
	assert_success
}

@test "a WebSocket route answers each text message on one connection, with one command process" {
	rm -f "$W/ws-starts"
	run timeout 30 /usr/bin/python3 "$FIX/wsclient.py" "ws://127.0.0.1:$WS_PORT/ws?lang=ru" \
		'{"n":1}' '{"n":2,"stages":2}' '{"n":3,"request_id":"mine-3"}'
	assert_success
	assert_equal "${#lines[@]}" 3
	jq_e '.text.n == 1 and .text.seen and .text.lang == "ru" and (.text.request_id|length) == 36' <<<"${lines[0]}"
	jq_e '.text.n == 2 and .text.stage == "done"' <<<"${lines[1]}"
	jq_e '.text.request_id == "mine-3"' <<<"${lines[2]}"
	assert_equal "$(wc -l <"$W/ws-starts")" 1
	# one access-log line per message and one (status 101) for the connection
	grep -q '"request_id":"mine-3".*"route":"WS /ws","status":200' "$W/ws.log"
	grep -q '"route":"WS /ws","status":101' "$W/ws.log"
}

@test "progress lines come as they are written: text frames, or binary frames of a binary= member" {
	WSPATH=/ws ws text '{"stages":2}'
	[[ $(jq -sc '[.[] | .op]' <<<"$output") == '["text","text","text","close"]' ]]
	jq -se '.[0].data|fromjson|.stage == "progress"' <<<"$output"
	# a binary= route sends the member's bytes as a binary frame, the rest as text
	run timeout 30 /usr/bin/python3 "$FIX/wsclient.py" "ws://127.0.0.1:$WS_PORT/ws-bin" --save "$W" \
		'{"blob":"aGVsbG8gd29ybGQ="}'
	assert_success
	jq_e '.binary == [11] and (.text|has("blob")|not) and .text.seen' <<<"$output"
	[[ $(<"$W/0.bin") == "hello world" ]]
}

@test "the handshake is checked: Upgrade, Connection, version 13, a 16-byte key, GET without a body" {
	local url="http://127.0.0.1:$WS_PORT/ws" key='-H Sec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ=='
	run curl -sS --max-time 10 -D "$W/h" -o "$W/body" -w '%{http_code}' "$url"
	assert_output 426
	grep -qi '^Upgrade: websocket' "$W/h"
	grep -qi '^Sec-WebSocket-Version: 13' "$W/h"
	jq_e '.error.code == "upgrade_required"' "$W/body"
	run curl -sS --max-time 10 -D "$W/h" -o "$W/body" -w '%{http_code}' -H 'Upgrade: websocket' \
		-H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 8' $key "$url"
	assert_output 426
	grep -qi '^Sec-WebSocket-Version: 13' "$W/h"
	run curl -sS --max-time 10 -o "$W/body" -w '%{http_code}' -H 'Upgrade: websocket' \
		-H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: short' "$url"
	assert_output 400
	jq_e '.error.message|test("Sec-WebSocket-Key")' "$W/body"
	run curl -sS --max-time 10 -o "$W/body" -w '%{http_code}' -H 'Upgrade: websocket' \
		-H 'Connection: keep-alive' -H 'Sec-WebSocket-Version: 13' $key "$url"
	assert_output 400
	run curl -sS --max-time 10 -D "$W/h" -o "$W/body" -w '%{http_code}' -d '{}' "$url"
	assert_output 405
	grep -qi '^Allow: GET' "$W/h"
	# the right answer to RFC 6455's own example key
	run curl -sS --max-time 5 -D "$W/h" -o /dev/null -H 'Upgrade: websocket' -H 'Connection: Upgrade' \
		-H 'Sec-WebSocket-Version: 13' $key "$url"
	grep -qi '^HTTP/1.1 101' "$W/h"
	grep -qi '^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=' "$W/h"
}

@test "frames: fragments are joined, pings answered, a close echoed" {
	ws fragments '{"part":"one two three four five"}'
	[[ $(jq -sc '[.[] | .op]' <<<"$output") == '["pong","text","close"]' ]]
	jq -se '(.[0].data == "hello?") and (.[1].data|fromjson|.part == "one two three four five")' <<<"$output"
	ws close
	jq_e 'select(.op == "close") | .code == 1000 and .reason == "bye"' <<<"$output"
}

@test "bad frames close with their code: unmasked 1002, binary 1003, bad UTF-8 1007, too big 1009" {
	ws unmasked '{}'
	jq_e 'select(.op == "close") | .code == 1002' <<<"$output"
	ws binary
	jq_e 'select(.op == "close") | .code == 1003' <<<"$output"
	ws badutf8
	jq_e 'select(.op == "close") | .code == 1007' <<<"$output"
	# --max-body 1024 bounds a message
	ws big 1000
	jq -se '.[0].op == "text" and (.[0].data|fromjson|.error.code == "invalid_body")' <<<"$output"
	ws big 2000
	jq_e 'select(.op == "close") | .code == 1009' <<<"$output"
	# more messages waiting than the queue holds: 1008
	ws many 20 '{"stages":1}'
	jq -se '[.[] | select(.op == "close")][0].code == 1008' <<<"$output"
}

@test "an idle WebSocket is closed with 1001 after --ws-idle-timeout" {
	local t0=${EPOCHREALTIME/[.,]/}
	ws idle
	jq_e 'select(.op == "close") | .code == 1001 and .reason == "idle timeout"' <<<"$output"
	(( (${EPOCHREALTIME/[.,]/} - t0) >= 900000 ))
}

@test "a message that is not JSON, a crash or a timeout gets an error message and the connection goes on" {
	run timeout 30 /usr/bin/python3 "$FIX/wsclient.py" "ws://127.0.0.1:$WS_PORT/ws" 'not json' '[1]' '{"ok":1}'
	assert_success
	jq_e '.text.error.code == "invalid_body" and .text.error.status == 400' <<<"${lines[0]}"
	jq_e '.text.error.code == "invalid_body"' <<<"${lines[1]}"
	jq_e '.text.ok == 1 and .text.seen' <<<"${lines[2]}"
	run timeout 30 /usr/bin/python3 "$FIX/wsclient.py" "ws://127.0.0.1:$WS_PORT/ws-crash" '{"a":1}' '{"a":2}'
	assert_success
	jq_e '.text.error.code == "command_crashed" and .text.error.status == 500' <<<"${lines[0]}"
	jq_e '.text.error.code == "command_crashed"' <<<"${lines[1]}"
	rm -f "$W/ws-sleeper.pids"
	run timeout 30 /usr/bin/python3 "$FIX/wsclient.py" "ws://127.0.0.1:$WS_PORT/ws-slow" '{"a":1}'
	assert_success
	jq_e '.text.error.code == "timeout" and .text.error.status == 504' <<<"$output"
	# the command and what it started are gone
	read -r p1 p2 <"$W/ws-sleeper.pids"
	wait_until 10 eval "! kill -0 $p1 2>/dev/null && ! kill -0 $p2 2>/dev/null"
}

@test "/metrics counts WebSocket connections opened, closed and open now" {
	ws text '{"a":1}'
	run curl -sS --max-time 10 "http://127.0.0.1:$WS_PORT/metrics"
	assert_success
	[[ $(grep '^unde_httpd_ws_opened_total ' <<<"$output" | cut -d' ' -f2) -ge 1 ]]
	grep -q '^unde_httpd_ws_connections 0$' <<<"$output"
	grep -q '^unde_httpd_requests_total{route="WS /ws",status="101"}' <<<"$output"
}

@test "a WS route and a GET route on one path are refused" {
	printf 'WS /s cat\nGET /s cat\n' >"$W/wsbad.routes"
	run --separate-stderr unde-httpd --routes "$W/wsbad.routes" --check
	assert_failure 78
	[[ $stderr == *"wsbad.routes:2: GET and WS routes for one path"* ]]
}

# ------------------------------------------------------------ deployment

@test "every routes file in etc/ is valid" {
	local f
	for f in "$UNDE_TOP_SRCDIR"/etc/httpd/*.routes; do
		run unde-httpd --routes "$f" --check
		assert_success
	done
}

@test "the socket units bind a private address, accept per connection and survive a burst" {
	local f
	for f in "$UNDE_TOP_SRCDIR"/etc/systemd/unde-httpd-*.socket; do
		grep -q '^Accept=yes$' "$f"
		grep -Eq '^ListenStream=(127\.0\.0\.1|10\.[0-9.]+):[0-9]+$' "$f"
		! grep -Eq '^ListenStream=(0\.0\.0\.0:|\[::\]:|[0-9]+$)' "$f"
		[ "$(sed -n 's/^MaxConnections=//p' "$f")" -ge 256 ]
		[ "$(sed -n 's/^TriggerLimitBurst=//p' "$f")" -ge 2000 ]
		grep -q '^CollectMode=inactive-or-failed$' "${f%.socket}@.service"
		grep -q '^StandardInput=socket$' "${f%.socket}@.service"
		# each connection is bounded, and all of them together
		grep -q '^Slice=unde-httpd.slice$' "${f%.socket}@.service"
		grep -Eq '^MemoryMax=[0-9]+M$' "${f%.socket}@.service"
		grep -Eq '^TasksMax=[0-9]+$' "${f%.socket}@.service"
	done
	grep -Eq '^MemoryMax=[0-9]+%$' "$UNDE_TOP_SRCDIR/etc/systemd/unde-httpd.slice"
	grep -Ec '^[0-9.]+:[0-9]+[[:space:]]+stream[[:space:]]+tcp[[:space:]]+nowait' \
		"$UNDE_TOP_SRCDIR/etc/httpd/inetd.conf"
}

# ---------------------------------------------------------------- fuzzing

@test "the request parser's fuzz target builds and runs 10 s without a crash" {
	command -v clang >/dev/null || skip "clang is not installed"
	run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		make -s -C "$UNDE_TOP_BUILDDIR" fuzz-httpd FUZZ_SECONDS=10
	assert_success
	assert_output --regexp 'Done [0-9]+ runs'
}

# ------------------------------------------- budgets and long route names

@test "a route's timeout= reaches its command as its budget, and a long route name keeps /metrics whole" {
	# the longest path a route may have: its label is past the 111 characters
	# that used to cut the exposition's fixed 512-byte lines
	long=/$(printf 'r%.0s' $(seq 127))
	cat >"$W/budget.routes" <<-EOF
		POST /budget   timeout=7 $LIBTEST opts
		POST $long     $LIBTEST filter
	EOF
	start_server budget "$W/budget.routes"
	run curl -sS --max-time 10 --data-binary '{"user_id":"6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10"}' \
		"http://127.0.0.1:$BUDGET_PORT/budget"
	assert_success
	assert_jq '.budget_ms == 7000 and .ms_left > 0 and .ms_left <= 7000'
	run curl -sS --max-time 10 --data-binary '{}' "http://127.0.0.1:$BUDGET_PORT$long"
	assert_success
	run curl -sS --max-time 10 "http://127.0.0.1:$BUDGET_PORT/metrics"
	assert_success
	assert_output --partial "unde_httpd_requests_total{route=\"POST $long\",status=\"200\"} 1"
	assert_output --partial "unde_httpd_request_duration_seconds_count{route=\"POST $long\"} 1"
	printf '%s\n' "$output" | promtool check metrics
}
