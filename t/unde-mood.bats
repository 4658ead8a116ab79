#!/usr/bin/env bats
# unde-mood: the Mood Agent (spec §11). The local classifier against the
# labelled set, the frame's shape and ranges, smoothing and spike damping,
# the DeepSeek → Gemini → local chain under one deadline (fakes in their
# wire formats), bad input, and POST /analyze through unde-httpd.

load lib/common
load lib/pg
load lib/httpd

BATS_NO_PARALLELIZE_WITHIN_FILE=true
FIX=$UNDE_TOP_SRCDIR/t/fixtures/mood

setup_file() {
	fake_start deepseek deepseek.py
	fake_start gemini gemini.py
	export DEEPSEEK_API_URL=$FAKE_DEEPSEEK_URL GEMINI_API_URL=$FAKE_GEMINI_URL
	pg_start
	SHARD_URL=$(pg_migrated_db shard0 shard)
	export SHARD_URL
}

teardown_file() { pg_teardown_file; }

setup() {
	fake_reset deepseek
	fake_reset gemini
	W=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/mood.XXXXXX")
	export UNDE_COUNTERS_DIR=$W
}

# mood TEXT [unde-mood ARGS]: the frame of one message, local classifier.
mood() {
	local text=$1
	shift
	jq -nc --arg t "$text" '{user_id:"u1", text:$t}' | unde-mood --local "$@" 2>/dev/null |
		jq -c .mood_frame
}

@test "unde-mood --help and --version answer and exit 0" {
	run -0 unde-mood --help
	assert_output --partial "--deadline-ms"
	run -0 unde-mood --version
	assert_output --partial unde-mood
}

@test "a frame has every key of the spec's mood_frame, every number in [0,1]" {
	run -0 --separate-stderr unde-mood --local <<<'{"user_id":"u1","text":"Мне очень нравится!!!","keep":1}'
	jq_e '.keep == 1 and .user_id == "u1"' <<<"$output"
	jq_e '.mood_frame | (.mood_frame_id|test("^[0-9a-f-]{36}$")) and (.timestamp|test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$"))
		and (.emotion|keys == ["arousal","dominance","valence"])
		and (.signals|keys == ["confidence","fatigue","frustration","urgency"])
		and (.smoothed_baseline|keys == ["arousal","valence"])
		and (.topic|keys == ["action","emotional_reversal","shift_detected","thread_break"])
		and (.style_params|keys == ["ask_clarification","defuse_first","response_length","tempo","warmth"])
		and (.rive_params|keys == ["gesture","tempo","tension","warmth"])
		and (.voice_params|keys == ["expressiveness","tempo","tension","warmth"])
		and .provider == "local"' <<<"$output"
	jq_e '.mood_frame | [.emotion[], .signals[], .smoothed_baseline[], .style_params.warmth,
		.rive_params.warmth, .rive_params.tension, .voice_params.warmth, .voice_params.tension]
		| all(type == "number" and . >= 0 and . <= 1)' <<<"$output"
	jq_e '.mood_frame | .rive_params.tempo >= 0.5 and .rive_params.tempo <= 1.5' <<<"$output"
}

@test "the local classifier gets at least 85% of the labelled set's polarities right" {
	local n
	n=$(wc -l <"$FIX/labelled.jsonl")
	((n >= 150))
	jq -c '{text}' "$FIX/labelled.jsonl" | unde-mood --local 2>/dev/null |
		jq -r .mood_frame.emotion.valence >"$W/valence"
	paste -d'\t' <(jq -r .polarity "$FIX/labelled.jsonl") "$W/valence" >"$W/pairs"
	run -0 awk -F'\t' '{p = ($2 > 0.55) ? "positive" : ($2 < 0.45) ? "negative" : "neutral";
		ok += (p == $1); n++} END {printf "%d %d %.1f\n", ok, n, 100 * ok / n}' "$W/pairs"
	echo "# local classifier polarity: $output (right, of, percent)" >&3
	read -r ok total pct <<<"$output"
	((total == n))
	((ok * 100 >= 85 * total))
}

@test "the labelled set covers Russian and English, slang, emoji, negation and marked sarcasm" {
	jq -se 'map(.lang) | (index("ru") != null) and (index("en") != null)' "$FIX/labelled.jsonl"
	jq -se 'map(select(.sarcasm)) | length >= 5' "$FIX/labelled.jsonl"
	jq -se 'map(select(.text | explode | any(. >= 9728))) | length >= 15' "$FIX/labelled.jsonl"
	jq -se 'map(select(.text | test("\\bне\\b|not|n.t\\b"))) | length >= 15' "$FIX/labelled.jsonl"
	jq -se 'map(.polarity) | unique == ["negative","neutral","positive"]' "$FIX/labelled.jsonl"
}

@test "the signal ranges of the labelled set hold for at least 85% of the checks" {
	jq -c '{text}' "$FIX/labelled.jsonl" | unde-mood --local 2>/dev/null | jq -c .mood_frame.signals >"$W/signals"
	paste -d'\t' <(jq -c '.signals // {}' "$FIX/labelled.jsonl") "$W/signals" |
		jq -R 'split("\t") | (.[0]|fromjson) as $want | (.[1]|fromjson) as $got
			| $want | to_entries[] | ($got[.key] >= .value[0] and $got[.key] <= .value[1])' >"$W/checks"
	run -0 jq -s '"\(map(select(.)) | length) \(length)"' -r "$W/checks"
	echo "# signal ranges held: $output" >&3
	read -r ok total <<<"$output"
	((total >= 30))
	((ok * 100 >= 85 * total))
}

@test "negation turns a word's sentiment, in Russian and English" {
	run -0 mood "мне нравится"
	jq_e '.emotion.valence > 0.55' <<<"$output"
	run -0 mood "мне не нравится"
	jq_e '.emotion.valence < 0.45' <<<"$output"
	run -0 mood "i do not like it"
	jq_e '.emotion.valence < 0.45' <<<"$output"
	run -0 mood "not bad"
	jq_e '.emotion.valence > 0.5' <<<"$output"
}

@test "what follows a contrast weighs more than what came before it" {
	run -0 mood "красиво, но неудобно"
	jq_e '.emotion.valence < 0.5' <<<"$output"
	run -0 mood "неудобно, но красиво"
	jq_e '.emotion.valence > 0.5' <<<"$output"
}

@test "intensifiers, capitals, held letters and exclamations make a feeling stronger" {
	local plain strong
	plain=$(mood "хорошо" | jq .emotion.valence)
	strong=$(mood "ОЧЕНЬ хорошооо!!!" | jq .emotion.valence)
	awk -v a="$plain" -v b="$strong" 'BEGIN{exit !(b > a)}'
	plain=$(mood "хорошо" | jq .emotion.arousal)
	strong=$(mood "ОЧЕНЬ ХОРОШО!!!" | jq .emotion.arousal)
	awk -v a="$plain" -v b="$strong" 'BEGIN{exit !(b > a)}'
	soft=$(mood "немного плохо" | jq .emotion.valence)
	hard=$(mood "плохо" | jq .emotion.valence)
	awk -v a="$soft" -v b="$hard" 'BEGIN{exit !(a > b)}'
}

@test "emoji, emoticons and Russian chat brackets carry sentiment" {
	run -0 mood "ок 😍"
	jq_e '.emotion.valence > 0.6' <<<"$output"
	run -0 mood "ну вот(("
	jq_e '.emotion.valence < 0.45' <<<"$output"
	run -0 mood "спасибо)))"
	jq_e '.emotion.valence > 0.6' <<<"$output"
}

@test "urgency, fatigue and frustration cues raise their signals" {
	run -0 mood "срочно нужно платье к 18:00"
	jq_e '.signals.urgency >= 0.8' <<<"$output"
	run -0 mood "i'm so tired, my feet hurt"
	jq_e '.signals.fatigue >= 0.6' <<<"$output"
	run -0 mood "БЕСИТ, опять ничего не работает?!"
	jq_e '.signals.frustration >= 0.7' <<<"$output"
	run -0 mood "покажи джинсы"
	jq_e '.signals.urgency < 0.2 and .signals.frustration < 0.2 and .signals.fatigue < 0.2' <<<"$output"
}

@test "partial ASR text without punctuation or capitals is read too" {
	run -0 mood "ну это вообще не то что я хотела"
	jq_e '.emotion.valence < 0.45' <<<"$output"
	run -0 mood "да вот это мне реально нравится"
	jq_e '.emotion.valence > 0.55' <<<"$output"
}

@test "high frustration asks to defuse first, answer short and slow down" {
	run -0 mood "ЗАДОЛБАЛО, опять нет размера 😡"
	jq_e '.signals.frustration >= 0.6 and .style_params.defuse_first and .style_params.response_length == "short"
		and .style_params.tempo == "slow" and .rive_params.tempo < 1 and .rive_params.gesture == "calm"' <<<"$output"
	run -0 mood "спасибо, отлично"
	jq_e '(.style_params.defuse_first | not) and .style_params.tempo == "normal"' <<<"$output"
}

@test "fatigue slows the voice and softens it" {
	run -0 mood "устала, сил нет"
	jq_e '.voice_params.tempo < 1 and .voice_params.expressiveness == "low" and .style_params.tempo == "slow"' <<<"$output"
}

@test "the baseline follows the previous frame at MOOD_SMOOTHING_FACTOR" {
	local prev='{"emotion":{"valence":0.5,"arousal":0.4,"dominance":0.5},"smoothed_baseline":{"valence":0.5,"arousal":0.4}}'
	run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"хорошо\",\"previous_mood_frame\":$prev}"
	# v = raw, base = 0.5 + 0.3 (v - 0.5)
	jq_e '.mood_frame | ((.smoothed_baseline.valence - (0.5 + 0.3 * (.emotion.valence - 0.5))) | fabs) < 0.002
		and .spike_damped == false' <<<"$output"
	MOOD_SMOOTHING_FACTOR=1 run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"хорошо\",\"previous_mood_frame\":$prev}"
	jq_e '.mood_frame | ((.smoothed_baseline.valence - .emotion.valence) | fabs) < 0.002' <<<"$output"
}

@test "a sequence of messages moves the baseline step by step, not at once" {
	local frame='null' text b
	: >"$W/bases"
	for text in "хорошо" "хорошо" "плохо" "ужасно" "ужасно"; do
		frame=$(jq -nc --arg t "$text" --argjson p "$frame" '{text:$t, previous_mood_frame:$p}' |
			unde-mood --local 2>/dev/null | jq -c .mood_frame)
		jq .smoothed_baseline.valence <<<"$frame" >>"$W/bases"
	done
	run -0 cat "$W/bases"
	# after the turn to negative, the baseline falls each step and stays above the raw value
	awk 'NR>=3 {if ($1 >= prev) exit 1} {prev=$1}' "$W/bases"
	jq_e '.smoothed_baseline.valence > .emotion.valence' <<<"$frame"
}

@test "a jump over MOOD_SPIKE_THRESHOLD is damped, not followed" {
	local prev='{"emotion":{"valence":0.95,"arousal":0.5,"dominance":0.5},"smoothed_baseline":{"valence":0.95,"arousal":0.5}}'
	run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"НЕНАВИЖУ, ужасно, кошмар 😡😡\",\"previous_mood_frame\":$prev}"
	# cut to the threshold (0.5) and followed at half the rate: 0.95 - 0.15*0.5
	jq_e '.mood_frame | .spike_damped and .emotion.valence < 0.2
		and ((.smoothed_baseline.valence - 0.875) | fabs) < 0.002' <<<"$output"
	MOOD_SPIKE_THRESHOLD=1 run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"НЕНАВИЖУ, ужасно, кошмар 😡😡\",\"previous_mood_frame\":$prev}"
	jq_e '.mood_frame | (.spike_damped | not) and .smoothed_baseline.valence < 0.8' <<<"$output"
}

@test "an emotional reversal and a thread break set topic.action" {
	local prev='{"emotion":{"valence":0.85,"arousal":0.5,"dominance":0.5}}'
	run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"нет, это ужасно\",\"previous_mood_frame\":$prev}"
	jq_e '.mood_frame.topic | .emotional_reversal and .action == "acknowledge_reversal"' <<<"$output"
	run -0 --separate-stderr unde-mood --local <<<"{\"text\":\"ладно, забудь, давай о другом\",\"previous_mood_frame\":$prev}"
	jq_e '.mood_frame.topic | .thread_break and .shift_detected and .action == "reset_thread"' <<<"$output"
	run -0 --separate-stderr unde-mood --local <<<'{"text":"кстати, а обувь есть?"}'
	jq_e '.mood_frame.topic | .shift_detected and (.thread_break|not) and .action == "follow_shift"' <<<"$output"
	run -0 --separate-stderr unde-mood --local <<<'{"text":"покажи ещё"}'
	jq_e '.mood_frame.topic.action == "continue"' <<<"$output"
}

@test "DeepSeek classifies first when its key is set, asked for JSON output" {
	MOOD_LLM_API_KEY=test-key run -0 --separate-stderr unde-mood <<<'{"request_id":"r-1","text":"hello"}'
	jq_e '.mood_frame.provider == "deepseek" and .mood_frame.emotion.valence == 0.8' <<<"$output"
	run -0 fake_requests deepseek
	jq_e 'length == 1 and .[0].path == "/chat/completions" and .[0].json.model == "deepseek-chat"
		and .[0].json.response_format.type == "json_object"
		and .[0].headers.authorization == "Bearer test-key"
		and .[0].headers["x-request-id"] == "r-1"
		and .[0].json.messages[1].content == "hello"' <<<"$output"
}

@test "a DeepSeek 500 falls to Gemini, which is asked by generateContent" {
	fake_fail deepseek '{"mode":"500"}'
	MOOD_LLM_API_KEY=test-key MOOD_FALLBACK_API_KEY=test-key UNDE_METRICS_DIR=$W \
		run -0 --separate-stderr unde-mood <<<'{"text":"hello"}'
	jq_e '.mood_frame.provider == "gemini" and .mood_frame.signals.frustration == 0.6' <<<"$output"
	run -0 fake_requests gemini
	jq_e 'length == 1 and .[0].path == "/v1beta/models/gemini-2.0-flash-lite:generateContent"
		and .[0].headers["x-goog-api-key"] == "test-key"
		and .[0].json.generationConfig.responseMimeType == "application/json"' <<<"$output"
	grep -q '^mood_agent_provider_fallbacks_total{from="deepseek"} 1$' "$W/unde-mood.prom"
	grep -q '^mood_agent_errors_total{provider="deepseek",reason="http_500"} 1$' "$W/unde-mood.prom"
	grep -q '^mood_agent_requests_total{provider="gemini"} 1$' "$W/unde-mood.prom"
}

@test "providers slow past the deadline give way to the local classifier within it" {
	fake_fail deepseek '{"mode":"slow","delay_ms":3000}'
	fake_fail gemini '{"mode":"slow","delay_ms":3000}'
	local t0 t1
	t0=${EPOCHREALTIME/[.,]/}
	MOOD_LLM_API_KEY=test-key MOOD_FALLBACK_API_KEY=test-key MOOD_DEADLINE_MS=300 \
		run -0 --separate-stderr unde-mood <<<'{"text":"спасибо, отлично"}'
	t1=${EPOCHREALTIME/[.,]/}
	jq_e '.mood_frame.provider == "local" and .mood_frame.emotion.valence > 0.6' <<<"$output"
	# well under the fakes' 3 s: the 300 ms deadline cut both calls
	(((t1 - t0) < 2500000))
	[[ $stderr == *'"reason":"timeout"'* ]]
}

@test "a 429, garbage and out-of-range answers are failures of that provider" {
	fake_fail deepseek '{"mode":"429","retry_after":"1"}'
	fake_config gemini '{"reply_text":"I think the user is happy"}'
	MOOD_LLM_API_KEY=test-key MOOD_FALLBACK_API_KEY=test-key run -0 --separate-stderr unde-mood <<<'{"text":"ok"}'
	jq_e '.mood_frame.provider == "local"' <<<"$output"
	[[ $stderr == *'"reason":"http_429"'* && $stderr == *'"reason":"bad_answer"'* ]]
	fake_config deepseek '{"reply":{"valence":1.7,"arousal":0.5,"dominance":0.5,"frustration":0,"urgency":0,"confidence":0.5,"fatigue":0}}'
	fake_config gemini '{"reply_text":"{\"valence\":0.5}"}'
	MOOD_LLM_API_KEY=test-key MOOD_FALLBACK_API_KEY=test-key run -0 --separate-stderr unde-mood <<<'{"text":"ok"}'
	jq_e '.mood_frame.provider == "local"' <<<"$output"
	[[ $stderr == *'"reason":"out_of_range"'* && $stderr == *'"reason":"bad_answer"'* ]]
	fake_fail deepseek '{"mode":"malformed"}'
	MOOD_LLM_API_KEY=test-key run -0 --separate-stderr unde-mood <<<'{"text":"ok"}'
	jq_e '.mood_frame.provider == "local"' <<<"$output"
}

@test "a provider without a key is skipped and MOOD_LLM_PROVIDER=local asks no one" {
	run -0 --separate-stderr unde-mood <<<'{"text":"ok"}'
	jq_e '.mood_frame.provider == "local"' <<<"$output"
	MOOD_LLM_PROVIDER=local MOOD_FALLBACK_PROVIDER=none MOOD_LLM_API_KEY=test-key \
		run -0 --separate-stderr unde-mood <<<'{"text":"ok"}'
	jq_e '.mood_frame.provider == "local"' <<<"$output"
	run -0 fake_requests deepseek
	assert_output "[]"
	MOOD_LLM_PROVIDER=claude run -78 --separate-stderr unde-mood <<<'{"text":"ok"}'
	[[ $stderr == *MOOD_LLM_PROVIDER* ]]
}

@test "a record without text, or with a bad previous frame, is refused and the stream goes on" {
	run -65 --separate-stderr unde-mood --local <<<$'{"user_id":"u1"}\n{"text":"ok","previous_mood_frame":{"emotion":{"valence":3}}}\n{"text":"ok"}'
	assert_equal "${#lines[@]}" 1
	jq_e '.mood_frame.provider == "local"' <<<"${lines[0]}"
	[[ $stderr == *'"code":"invalid_field"'*'field text'* ]]
	[[ $stderr == *'previous_mood_frame.emotion'* ]]
}

@test "online, a refused record answers with an error line" {
	UNDE_ONLINE=1 run --separate-stderr unde-mood --local <<<$'{"text":5}\n{"text":"ok"}'
	assert_equal "${#lines[@]}" 2
	jq_e '.error.code == "invalid_field"' <<<"${lines[0]}"
	jq_e '.mood_frame.provider == "local"' <<<"${lines[1]}"
}

@test "POST /analyze through unde-httpd answers a mood_frame" {
	httpd_serve mood "$UNDE_TOP_SRCDIR/etc/httpd/mood.routes" -- --metrics-file "$W/httpd.metrics"
	run curl -s --max-time 10 -H 'X-Request-Id: req-7' -d '{"user_id":"u1","text":"Супер, спасибо!"}' \
		"http://127.0.0.1:$MOOD_PORT/analyze"
	httpd_stop mood
	assert_success
	jq_e '.mood_frame.emotion.valence > 0.6 and .request_id == "req-7" and .mood_frame.provider == "local"' <<<"$output"
}

@test "without a previous frame in the input, the last one saved in the user's shard is used" {
	local u=7d8c3a52-2f1e-4b61-9a53-0c1d2e3f4a5b
	psql -q -v ON_ERROR_STOP=1 "$SHARD_URL" <<SQL
INSERT INTO conversations (id, user_id) VALUES ('11111111-1111-4111-8111-111111111111', '$u');
INSERT INTO messages (conversation_id, role, content, mood_frame, created_at) VALUES
 ('11111111-1111-4111-8111-111111111111', 'user', 'old', '{"mood_frame_id":"f-old","emotion":{"valence":0.2,"arousal":0.5,"dominance":0.5},"smoothed_baseline":{"valence":0.2,"arousal":0.5}}', now() - interval '1 hour'),
 ('11111111-1111-4111-8111-111111111111', 'user', 'new', '{"mood_frame_id":"f-new","emotion":{"valence":0.9,"arousal":0.5,"dominance":0.5},"smoothed_baseline":{"valence":0.9,"arousal":0.5}}', now() - interval '1 minute'),
 ('11111111-1111-4111-8111-111111111111', 'assistant', 'reply', NULL, now());
SQL
	SHARD_0_DB_URL=$SHARD_URL run -0 --separate-stderr unde-mood --local <<<"{\"user_id\":\"$u\",\"text\":\"покажи джинсы\"}"
	# neutral message (0.5) against the saved baseline 0.9: 0.9 + 0.3 * (0.5 - 0.9)
	jq_e '.mood_frame | .previous_source == "shard" and ((.smoothed_baseline.valence - 0.78) | fabs) < 0.002' <<<"$output"
	SHARD_0_DB_URL=$SHARD_URL run -0 --separate-stderr unde-mood --local <<<"{\"user_id\":\"$u\",\"text\":\"покажи джинсы\",\"previous_mood_frame_id\":\"f-old\"}"
	jq_e '.mood_frame | .previous_source == "shard" and ((.smoothed_baseline.valence - 0.29) | fabs) < 0.002' <<<"$output"
	# a user the shard does not know, and MOOD_HISTORY=0: no previous frame, no error
	SHARD_0_DB_URL=$SHARD_URL run -0 --separate-stderr unde-mood --local <<<'{"user_id":"00000000-0000-4000-8000-000000000001","text":"ok"}'
	jq_e '.mood_frame.previous_source == null' <<<"$output"
	MOOD_HISTORY=0 SHARD_0_DB_URL=$SHARD_URL run -0 --separate-stderr unde-mood --local <<<"{\"user_id\":\"$u\",\"text\":\"ok\"}"
	jq_e '.mood_frame.previous_source == null' <<<"$output"
	# the input's frame wins over the shard's
	SHARD_0_DB_URL=$SHARD_URL run -0 --separate-stderr unde-mood --local <<<"{\"user_id\":\"$u\",\"text\":\"ok\",\"previous_mood_frame\":{\"emotion\":{\"valence\":0.5,\"arousal\":0.5,\"dominance\":0.5}}}"
	jq_e '.mood_frame.previous_source == "input"' <<<"$output"
}
