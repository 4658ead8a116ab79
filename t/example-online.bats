#!/usr/bin/env bats
# example-online (t/unit/example-online.c): the pattern of an online UNDE
# command — options table, provider chain with a local stand-in, a sibling
# call, shared counters — against the echo fake standing in for both the
# provider and the sibling service.

load lib/common
load lib/fake

setup_file() {
	fake_start echo echo.py
	export GREETER_API_URL=$FAKE_ECHO_URL ECHO_URL=$FAKE_ECHO_URL
}

setup() {
	fake_reset echo
	W=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$W
}

ex() { "$UNDE_TOP_BUILDDIR/t/unit/example-online" "$@"; }

U=6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10

@test "the provider greets when it has a key, with the salute from the option table" {
	GREETER_API_KEY=gk run --separate-stderr ex --salute Salem <<<"{\"user_id\":\"$U\",\"name\":\"Aru\"}"
	assert_success
	assert_jq '.provider == "greeter" and .greeting == "Salem, Aru!" and .greeted_before == false'
	fake_requests echo | jq_e '.[0].headers.authorization == "Bearer gk"' >/dev/null
}

@test "without a key the local stand-in greets, and says why the provider was skipped" {
	run --separate-stderr ex <<<"{\"user_id\":\"$U\",\"name\":\"Aru\"}"
	assert_success
	assert_jq '.provider == "local" and .greeting == "Hello, Aru." and .providers_skipped[0].reason == "no_key"'
	assert_equal "$(fake_requests echo | jq length)" 0
}

@test "a provider too slow for the budget is cut and the stand-in answers in time" {
	fake_fail echo '{"path":"/echo","mode":"slow","count":-1,"delay_ms":10000}'
	GREETER_API_KEY=gk UNDE_DEADLINE_MS=1000 run --separate-stderr ex <<<"{\"user_id\":\"$U\",\"name\":\"Aru\"}"
	assert_success
	assert_jq '.provider == "local" and .providers_skipped[0].reason == "timeout"'
}

@test "a sibling's answer is kept and its error becomes the record's" {
	fake_config echo '{"reply_body":"{\"echo\":\"yes\"}"}'
	run --separate-stderr ex <<<"{\"user_id\":\"$U\",\"name\":\"Aru\",\"ask\":true,\"request_id\":\"e-1\"}"
	assert_success
	assert_jq '.sibling.echo == "yes"'
	fake_requests echo /reply | jq_e '.[0].headers["x-request-id"] == "e-1"' >/dev/null
	fake_config echo '{"reply_status":503,"reply_body":"{\"error\":{\"code\":\"busy\",\"message\":\"try later\",\"status\":75}}"}'
	run --separate-stderr ex <<<"{\"user_id\":\"$U\",\"name\":\"Aru\",\"ask\":true}"
	assert_failure 75
	assert_stderr_error_code busy
}

@test "bad records and options are refused by the tables, and counts add up across processes" {
	run --separate-stderr ex --reserve-ms 99999 </dev/null
	assert_failure 64
	run --separate-stderr ex <<<'{"user_id":"x","name":"Aru"}'
	assert_failure 65
	for i in 1 2 3; do
		printf '{"user_id":"%s","name":"n%s"}\n' "$U" "$i" "$U" "$i" | ex >/dev/null 2>&1 &
	done
	wait
	run "$UNDE_TOP_BUILDDIR/t/unit/libtest" counters "$W/example-online.counters" get \
		example_greetings_total 'provider="local"'
	assert_output 6
}

@test "--help lists the options from the table" {
	run ex --help
	assert_success
	assert_output --partial '  -s, --salute WORD    the word to greet with (default Hello)'
	assert_output --partial '  --reserve-ms MS      budget kept for the local stand-in'
}
