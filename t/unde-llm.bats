#!/usr/bin/env bats
# unde-llm: one dialogue turn on a real shard (and production for routing,
# tombstones and the catalog): frames, hybrid search, the filters, the
# ContextPack, the provider chain with fakes, the local responder, saving.

load lib/common
load lib/pg
load lib/fake

setup_file() {
	pg_start
	export UNDE_T_PROD UNDE_T_S0
	UNDE_T_PROD=$(pg_createdb prod)
	UNDE_T_S0=$(pg_createdb shard0)
	unde-db migrate production --url "$UNDE_T_PROD" >/dev/null 2>&1
	unde-shard init --shard 0 --url "$UNDE_T_S0" >/dev/null 2>&1
}

teardown_file() {
	fake_stop_all
	pg_stop
	unde_teardown_file
}

setup() {
	export UNDE_ENV_FILE=/dev/null
	export PRODUCTION_DB_URL=$UNDE_T_PROD SHARD_0_DB_URL=$UNDE_T_S0
	export MASTER_ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
	TMP=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$TMP TOMBSTONE_COPY_FILE=$TMP/tombstones.jsonl
	U=$(uuid)
}

uuid() { cat /proc/sys/kernel/random/uuid; }
sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# turn MESSAGE [EXTRA-JSON-MEMBERS] — one turn line for user $U.
turn() {
	jq -nc --arg u "$U" --arg m "$1" --argjson x "${2:-{\}}" '{user_id: $u, message: $m, request_id: "t-\(now)"} + $x'
}
# say MESSAGE [EXTRA] — run one turn through unde-llm, output in $TMP/out.
say() {
	turn "$@" | unde-llm --show-context-pack >"$TMP/out" 2>"$TMP/err"
}

@test "--help and --version" {
	run unde-llm --help
	assert_success
	assert_output --partial 'show-context-pack'
	assert_output --partial 'exchange_id'
	run unde-llm --version
	assert_success
	assert_output --regexp '^unde-llm [0-9]'
}

@test "the local path end to end: unde-mood | unde-context | unde-persona | unde-llm answers and saves both messages" {
	jq -nc --arg u "$U" '{user_id: $u, text: "хочу пойти в кино сегодня", message: "хочу пойти в кино сегодня", lat: 25.1, lng: 55.2, request_id: "pipe-1"}' |
		unde-mood 2>/dev/null | unde-context 2>/dev/null | unde-persona 2>/dev/null |
		unde-llm >"$TMP/out" 2>"$TMP/err"
	run cat "$TMP/out"
	assert_json_line_count 1
	assert_jq '.provider == "local" and .model_used == "local-template-v1"'
	assert_jq '(.text | length) > 0 and .intent == "chat"'
	assert_jq '.voice_params.preset and .avatar_state.expression and .render_hints.ui_density'
	assert_jq '.sensors.mood == "pipe" and .sensors.context == "pipe" and .sensors.persona == "pipe"'
	assert_jq '(.exchange_id | test("^[0-9a-f-]{36}$")) and .episodes_used == 0 and .duration_ms >= 0'
	# every provider was skipped for want of a key, in the configured order
	assert_jq '[.providers_skipped[] | .provider] == ["deepseek","gemini","claude","qwen"]'
	assert_jq '[.providers_skipped[] | .reason] | unique == ["no_key"]'
	um=$(jq -r .user_message_id "$TMP/out")
	am=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select role, input_type, model_used, duration_ms is not null, mood_frame is not null from messages where id in ('$um','$am') order by created_at"
	assert_line --index 0 'user|text||f|t'
	assert_line --index 1 'assistant||local-template-v1|t|f'
	run sql0 "select episodes_used from llm_answer_meta where message_id = '$am'"
	assert_output 0
}
