#!/usr/bin/env bats
# unde-persona: the rule engine (golden cases as data), bad input, and the
# feedback loop (feedback, flush, profile, cleanup) against a real shard
# database, with the clock set by UNDE_NOW.

load lib/common
load lib/pg
load lib/httpd

GOLDEN=$UNDE_TOP_SRCDIR/t/fixtures/persona

setup_file() {
	pg_start
	export UNDE_T_S0
	UNDE_T_S0=$(pg_createdb shard0)
	unde-db migrate shard --url "$UNDE_T_S0" >/dev/null 2>&1
}

teardown_file() {
	pg_stop
	unde_teardown_file
}

setup() {
	export UNDE_ENV_FILE=/dev/null
	export SHARD_0_DB_URL=$UNDE_T_S0
	export UNDE_NOW=2026-02-13T15:00:00Z
	TMP=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$TMP
	U=$(uuid)
}

teardown() { httpd_stop_all; }

sql() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# signal EXCHANGE TYPE [SIGNAL_ID] — one feedback line for user $U.
signal() {
	printf '{"user_id":"%s","signal_id":"%s","exchange_id":"%s","signal_type":"%s","signal_data":{}}\n' \
		"$U" "${3:-$(uuid)}" "$1" "$2"
}
flushline() { printf '{"user_id":"%s","exchange_id":"%s"}\n' "$U" "$1"; }
field() { sql "select profile->>'$1' from persona_profiles where user_id = '$U'"; }

# ------------------------------------------------------------ the engine

@test "--help names the subcommands and --version prints the version" {
	run unde-persona --help
	assert_success
	assert_output --partial feedback
	assert_output --partial cleanup
	run unde-persona --version
	assert_success
	assert_output --regexp '^unde-persona [0-9]'
}

@test "every golden case holds: input line in, the listed output fields out" {
	n=$(ls "$GOLDEN"/golden/*.json | wc -l)
	((n >= 29))
	run "$GOLDEN/check-golden" "$GOLDEN"/golden/*.json
	assert_success
	assert_output ''
}

@test "the golden cases cover every stage, tone mode, voice preset, sensitivity level and rule layer" {
	for f in "$GOLDEN"/golden/*.json; do
		jq -c .input "$f" | UNDE_NOW=2026-02-13T15:00:00Z unde-persona --no-shard 2>/dev/null |
			jq -c --slurpfile g "$f" '{stage: .persona.debug.stage,
				tone: .persona.debug.rules.tone_mode.value, preset: .persona.voice_params.preset,
				sens: ($g[0].input.context_frame.cultural.sensitivity_level // "low"),
				layers: [.persona.debug.rules[].layer]}'
	done >"$TMP/cover"
	run jq -sc '{stages: (map(.stage) | unique), tones: (map(.tone) | unique),
		presets: (map(.preset) | unique), sens: (map(.sens) | unique),
		layers: (map(.layers[]) | unique)}' "$TMP/cover"
	assert_jq '.stages == [0,1,2,3]'
	assert_jq '.tones | length == 8'
	assert_jq '.presets == ["energetic_happy","friendly_upbeat","friendly_warm","neutral_confident","soft_calm","soft_empathetic"]'
	assert_jq '.sens == ["high","low","medium"]'
	assert_jq '.layers == ["default","hard_ban","override","profile","stage"]'
}

@test "a record keeps its own keys, and runs without any database when the profile is in the request" {
	unset SHARD_0_DB_URL
	run --separate-stderr unde-persona <<<'{"user_id":"u1","request_id":"r9","keep":[1,2],"persona_profile":{"warmth":0.9},"relationship_stage":1}'
	assert_success
	assert_json_line_count 1
	assert_jq '.keep == [1,2] and .request_id == "r9" and .persona.debug.profile_source == "request"'
}

@test "another major contract version is refused with exit 65, and the stream goes on" {
	run --separate-stderr unde-persona --no-shard <<-'EOF'
	{"contract_version":"1.0.0"}
	{"contract_version":"0.7.3"}
	EOF
	assert_equal "$status" 65
	assert_stderr_error_code contract_version_mismatch
	assert_json_line_count 1
	assert_jq '.persona.persona_directive.contract_version == "0.7.0"'
	[[ $stderr == *'1.0.0 has major version 1'* ]]
}

@test "wrong types are refused naming the field's path" {
	run --separate-stderr unde-persona --no-shard <<-'EOF'
	{"mood_frame":{"emotion":{"valence":"high"}}}
	{"persona_profile":{"warmth":"very"}}
	{"relationship_stage":"two"}
	{"context_frame":{"cultural":{"sensitivity_level":"extreme"}}}
	{"user_intent":{"requested":{"upsell":"push"}}}
	EOF
	assert_equal "$status" 65
	assert_output ''
	[[ $stderr == *'mood_frame.emotion.valence: expected a number'* ]]
	[[ $stderr == *'persona_profile.warmth: expected a number'* ]]
	[[ $stderr == *'relationship_stage: expected an integer'* ]]
	[[ $stderr == *'sensitivity_level: expected'* ]]
	[[ $stderr == *'user_intent.requested.upsell'* ]]
}

@test "online mode answers a bad record with one error line" {
	run --separate-stderr env UNDE_ONLINE=1 unde-persona --no-shard <<<'{"contract_version":"2.0.0"}'
	assert_json_line_count 1
	assert_jq '.error.code == "contract_version_mismatch"'
}

# ------------------------------------------------------ feedback and flush

@test "feedback is idempotent by signal_id for 72 hours, across processes" {
	sid=$(uuid)
	run --separate-stderr unde-persona feedback <<<"$(signal x1 humor_positive "$sid")"
	assert_success
	assert_jq '.buffered == true and (has("duplicate") | not)'
	run --separate-stderr unde-persona feedback <<<"$(signal x1 humor_positive "$sid")"
	assert_success
	assert_jq '.buffered == true and .duplicate == true'
	assert_equal "$(sql "select count(*) from persona_signal_buffer where user_id = '$U'")" 1
	run --separate-stderr env UNDE_NOW=2026-02-16T14:59:00Z unde-persona feedback <<<"$(signal x1 humor_positive "$sid")"
	assert_jq '.duplicate == true'
	run --separate-stderr env UNDE_NOW=2026-02-16T15:01:00Z unde-persona feedback <<<"$(signal x1 humor_positive "$sid")"
	assert_jq '.buffered == true and (has("duplicate") | not)'
}

@test "feedback refuses an unknown signal type and a non-UUID user" {
	run --separate-stderr unde-persona feedback <<-EOF
	$(signal x1 humor_loved)
	{"user_id":"bob","signal_id":"$(uuid)","exchange_id":"x","signal_type":"humor_positive"}
	$(signal x1 humor_positive)
	EOF
	assert_equal "$status" 65
	assert_stderr_error_code unknown_signal_type
	[[ $stderr == *'user_id: expected a UUID'* ]]
	assert_json_line_count 1
}

@test "each conflict rule keeps the conservative signal of a connected component" {
	pairs='humor_positive:humor_ignored:humor_ignored humor_positive:humor_rejected:humor_rejected
		cultural_ref_positive:cultural_ref_rejected:cultural_ref_rejected warmth_positive:warmth_too_much:warmth_too_much
		brevity_requested:detail_requested:brevity_requested formality_requested:casual_requested:formality_requested
		memory_callback_positive:memory_callback_rejected:memory_callback_rejected warmth_positive:compliment_rejected:compliment_rejected'
	for p in $pairs; do
		IFS=: read -r a b win <<<"$p"
		U=$(uuid)
		{ signal e1 "$a"; signal e1 "$b"; signal e1 "$a"; } | unde-persona feedback >/dev/null 2>&1
		run --separate-stderr unde-persona flush <<<"$(flushline e1)"
		assert_success
		assert_jq '.resolved == 1 and .discarded == 2 and .applied == 1'
		# the winner's effect, and only it, reached the profile
		f=$(sql "select key from persona_profiles, jsonb_each(profile) where user_id = '$U'")
		case $win in
		humor_*) want=humor_level ;; cultural_*) want=cultural_refs_affinity ;;
		warmth_*) want=warmth ;; brevity_*) want=verbosity ;; formality_*) want=formality ;;
		memory_*) want=memory_callbacks ;; compliment_*) want=compliment_level ;;
		esac
		assert_equal "$f" "$want"
	done
	# humor_ignored beats humor_positive: humor went down 0.03 from 0.4
	U=$(uuid)
	{ signal e1 humor_positive; signal e1 humor_ignored; } | unde-persona feedback >/dev/null 2>&1
	unde-persona flush <<<"$(flushline e1)" >/dev/null 2>&1
	assert_equal "$(field humor_level)" 0.37
}

@test "momentum caps per exchange: safe fields move at most 0.10, sensitive ones 0.05" {
	# humor_rejected (-0.10) and humor_ignored (-0.03) do not conflict: -0.13 capped to -0.10
	{ signal e1 humor_rejected; signal e1 humor_ignored; signal e1 cultural_ref_rejected; } |
		unde-persona feedback >/dev/null 2>&1
	run --separate-stderr unde-persona flush <<<"$(flushline e1)"
	assert_jq '.resolved == 3 and .discarded == 0 and .applied == 2'
	assert_equal "$(field humor_level)" 0.3
	assert_equal "$(field cultural_refs_affinity)" 0.45
}

@test "momentum caps per day: a sensitive field moves at most 0.15 a day, and again the next day" {
	for i in 1 2 3 4; do
		signal "d$i" cultural_ref_rejected | unde-persona feedback >/dev/null 2>&1
		unde-persona flush <<<"$(flushline "d$i")" >/dev/null 2>&1
	done
	assert_equal "$(field cultural_refs_affinity)" 0.35
	assert_equal "$(sql "select round(total_delta::numeric, 6) from signal_daily_deltas where user_id = '$U' and field = 'cultural_refs_affinity'")" -0.150000
	export UNDE_NOW=2026-02-14T09:00:00Z
	signal d5 cultural_ref_rejected | unde-persona feedback >/dev/null 2>&1
	unde-persona flush <<<"$(flushline d5)" >/dev/null 2>&1
	assert_equal "$(field cultural_refs_affinity)" 0.3
}

@test "rejections create temp blocks, at most 20 per user with the oldest replaced, and the engine obeys them" {
	for i in $(seq 25); do signal "b$i" humor_rejected; done | unde-persona feedback >/dev/null 2>&1
	for i in $(seq 25); do flushline "b$i"; done >"$TMP/flushes"
	run --separate-stderr unde-persona flush <"$TMP/flushes"
	assert_success
	assert_json_line_count 25
	assert_equal "$(sql "select count(*) from persona_temp_blocks where user_id = '$U'")" 20
	# the survivors are the 20 newest signals
	assert_equal "$(sql "select count(*) from persona_temp_blocks b join persona_signal_ids s using (signal_id) where b.user_id = '$U'")" 20
	run --separate-stderr unde-persona <<<"{\"user_id\":\"$U\",\"relationship_stage\":2,\"persona_profile\":{\"humor_level\":0.9}}"
	assert_success
	assert_jq '.persona.debug.rules.humor == {"value":"none","layer":"hard_ban","rule":"hard_ban.temp_block.humor"}'
	run --separate-stderr unde-persona profile --user-id "$U"
	assert_success
	assert_jq '.temp_blocks | length == 20'
	assert_jq '.temp_blocks[0].key == "humor" and .temp_blocks[0].until == "2026-02-14T15:00:00.000Z"'
}

@test "sessions, exchanges and positive signals upgrade the stage; inactivity downgrades it" {
	# stage 1 takes 3 sessions, 10 exchanges, 2 positive signals
	n=0
	for t in 10:00 11:00 12:00; do
		export UNDE_NOW=2026-02-13T${t}:00Z
		for i in 1 2 3 4; do
			n=$((n + 1))
			signal "s$n" humor_positive | unde-persona feedback >/dev/null 2>&1
			flushline "s$n"
		done | unde-persona flush >"$TMP/out" 2>/dev/null
	done
	run jq -sc '[.[].relationship_stage.upgraded] | index(true)' "$TMP/out"
	assert_output 1  # the 10th exchange of the 3rd session
	assert_equal "$(sql "select stage, sessions_count, total_exchanges, positive_signals_count from relationship_stage where user_id = '$U'")" "1|3|12|12"
	run --separate-stderr unde-persona <<<"{\"user_id\":\"$U\"}"
	assert_jq '.persona.debug.stage == 1 and .persona.debug.stage_source == "shard" and .persona.debug.profile_source == "shard"'
	# 90 days idle at stage 1: read as stage 0 at once, persisted by the daily cleanup
	export UNDE_NOW=2026-05-14T12:00:00Z
	run --separate-stderr unde-persona profile --user-id "$U"
	assert_jq '.relationship_stage.stage == 0 and .relationship_stage.stored_stage == 1'
	run --separate-stderr unde-persona cleanup
	assert_success
	assert_jq '.stages_downgraded >= 1'
	assert_equal "$(sql "select stage from relationship_stage where user_id = '$U'")" 0
}

@test "many concurrent processes flushing one user lose no update" {
	for i in $(seq 24); do signal "c$i" humor_positive; done | unde-persona feedback >/dev/null 2>&1
	pids=()
	for i in $(seq 24); do
		unde-persona flush <<<"$(flushline "c$i")" >"$TMP/c$i" 2>"$TMP/c$i.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	cat "$TMP"/c*[0-9] >"$TMP/all"
	run jq -s 'map(.resolved) | add' "$TMP/all"
	assert_output 24
	assert_equal "$(sql "select total_exchanges, positive_signals_count from relationship_stage where user_id = '$U'")" "24|24"
	# 24 × +0.05 asked; the daily cap +0.30 held exactly
	assert_equal "$(field humor_level)" 0.7
	assert_equal "$(sql "select round(total_delta::numeric, 6) from signal_daily_deltas where user_id = '$U'")" 0.300000
}

@test "stale buffers of exchanges never flushed are flushed by the next flush" {
	export UNDE_NOW=2026-02-13T14:00:00Z
	signal old1 detail_requested | unde-persona feedback >/dev/null 2>&1
	export UNDE_NOW=2026-02-13T15:00:00Z
	signal new1 humor_positive | unde-persona feedback >/dev/null 2>&1
	run --separate-stderr unde-persona flush <<<"$(flushline new1)"
	assert_jq '.stale_flushed == 1 and .resolved == 2'
	assert_equal "$(field verbosity)" 0.6
	assert_equal "$(sql "select count(*) from persona_signal_buffer where user_id = '$U'")" 0
}

@test "profile of an unknown user and flush without a shard are clear errors" {
	run --separate-stderr unde-persona profile --user-id "$U"
	assert_equal "$status" 65
	[[ $stderr == *unknown_user* ]]
	run --separate-stderr unde-persona profile <<<"{\"user_id\":\"$U\"}"
	assert_equal "$status" 65
	assert_stderr_error_code unknown_user
	run --separate-stderr env -u SHARD_0_DB_URL unde-persona flush <<<"$(flushline x)"
	assert_equal "$status" 65
	assert_stderr_error_code no_shard
}

@test "cleanup removes expired temp blocks, deltas older than 7 days and keys older than 72 h" {
	signal k1 compliment_rejected | unde-persona feedback >/dev/null 2>&1
	unde-persona flush <<<"$(flushline k1)" >/dev/null 2>&1
	sql "insert into signal_daily_deltas values ('$U', 'warmth', '2026-02-01', 0.1)" >/dev/null
	export UNDE_NOW=2026-02-15T15:00:00Z
	run --separate-stderr unde-persona cleanup
	assert_jq '.deltas_deleted >= 1 and .temp_blocks_active >= 1'
	assert_equal "$(sql "select count(*) from signal_daily_deltas where user_id = '$U'")" 1
	assert_equal "$(sql "select count(*) from persona_signal_ids where user_id = '$U'")" 1
	export UNDE_NOW=2026-02-17T15:00:00Z
	run --separate-stderr unde-persona cleanup
	assert_jq '.temp_blocks_deleted >= 1 and .signal_ids_deleted >= 1'
	assert_equal "$(sql "select count(*) from persona_temp_blocks where user_id = '$U'")" 0
	assert_equal "$(sql "select count(*) from persona_signal_ids where user_id = '$U'")" 0
	grep -q '^0 4 \* \* \*  unde  unde-job persona_cleanup -- unde-persona cleanup' "$UNDE_TOP_SRCDIR/cron/unde"
}

@test "metrics are summed over every process that shares the counters file" {
	export PERSONA_METRICS_FILE=$TMP/persona.counters
	for i in 1 2 3; do unde-persona --no-shard <<<'{}' >/dev/null 2>&1; done
	unde-persona --no-shard <<<'{"contract_version":"9.0.0"}' >/dev/null 2>&1 || true
	signal m1 humor_positive | unde-persona feedback >/dev/null 2>&1
	run unde-persona metrics
	assert_success
	assert_line 'persona_agent_latency_ms_count 3'
	assert_line 'persona_agent_errors 1'
	assert_line 'persona_feedback_signals_total 1'
	assert_output --partial 'persona_agent_latency_ms_bucket{le="+Inf"} 3'
	assert_output --partial 'persona_signal_discard_rate'
	assert_output --partial 'persona_stage_upgrades_total'
	assert_output --partial 'persona_temp_blocks_active'
}

# ------------------------------------------------------- through unde-httpd

@test "POST /persona, /persona/feedback, /persona/flush and GET /persona/profile through unde-httpd" {
	httpd_serve persona "$UNDE_TOP_SRCDIR/etc/httpd/persona.routes" \
		SHARD_0_DB_URL="$UNDE_T_S0" UNDE_NOW="$UNDE_NOW" UNDE_COUNTERS_DIR="$TMP"
	port=$PERSONA_PORT
	sid=$(uuid)
	run curl -sS --max-time 10 --data-binary "{\"user_id\":\"$U\",\"signal_id\":\"$sid\",\"exchange_id\":\"h1\",\"signal_type\":\"warmth_positive\"}" \
		"http://127.0.0.1:$port/persona/feedback"
	assert_jq '.buffered == true'
	run curl -sS --max-time 10 --data-binary "{\"user_id\":\"$U\",\"exchange_id\":\"h1\"}" "http://127.0.0.1:$port/persona/flush"
	assert_jq '.resolved == 1 and .applied == 1'
	run curl -sS --max-time 10 "http://127.0.0.1:$port/persona/profile?user_id=$U"
	assert_jq '.persona_profile.warmth == 0.75 and .relationship_stage.stage == 0'
	run curl -sS --max-time 10 --data-binary "{\"user_id\":\"$U\",\"mood_frame\":{\"emotion\":{\"valence\":0.1}}}" "http://127.0.0.1:$port/persona"
	assert_jq '.persona.debug.profile_source == "shard" and .persona.debug.rules.tone_mode.value == "gentle"'
	run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --data-binary '{"contract_version":"3.1.0"}' "http://127.0.0.1:$port/persona"
	assert_output 400
	httpd_stop persona
}

@test "a process reads a profile from the shard once, then from its LRU within the TTL" {
	signal p1 warmth_positive | unde-persona feedback >/dev/null 2>&1
	unde-persona flush <<<"$(flushline p1)" >/dev/null 2>&1
	run --separate-stderr unde-persona <<-EOF
	{"user_id":"$U"}
	{"user_id":"$U"}
	EOF
	assert_success
	run jq -sc 'map(.persona.debug.profile_source)' <<<"$output"
	assert_output '["shard","cache"]'
	run --separate-stderr env PERSONA_PROFILE_CACHE_TTL_MS=0 unde-persona <<-EOF
	{"user_id":"$U"}
	{"user_id":"$U"}
	EOF
	run jq -sc 'map(.persona.debug.profile_source)' <<<"$output"
	assert_output '["shard","shard"]'
}

@test "with PRODUCTION_DB_URL a user's signals, flush and profile go to the shard of its route" {
	prod=$(pg_createdb "prod_$RANDOM") s1=$(pg_createdb "shard1_$RANDOM")
	unde-db migrate production --url "$prod" >/dev/null 2>&1
	unde-db migrate shard --url "$s1" >/dev/null 2>&1
	psql -XAtq "$prod" -c "insert into shards (shard_id, name) values (1, 'dubai-shard-1');
		insert into routing_table (user_id, shard_id) values ('$U', 1)"
	export PRODUCTION_DB_URL=$prod SHARD_1_DB_URL=$s1
	signal r1 warmth_positive | unde-persona feedback >/dev/null 2>&1
	run --separate-stderr unde-persona flush <<<"$(flushline r1)"
	assert_success
	assert_jq '.applied == 1'
	assert_equal "$(psql -XAt "$s1" -c "select profile->>'warmth' from persona_profiles where user_id = '$U'")" 0.75
	assert_equal "$(sql "select count(*) from persona_profiles where user_id = '$U'")" 0
	run --separate-stderr unde-persona profile --user-id "$U"
	assert_success
	assert_jq '.persona_profile.warmth == 0.75'
}
