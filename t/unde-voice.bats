#!/usr/bin/env bats
# unde-voice: the Voice Server (spec §12). Real audio only: the MP3 that
# espeak-ng + LAME make is decoded by ffprobe/sox, its format and duration
# checked; voice_params change the speech; streaming splits it into
# chunks that join into the same valid MP3; the phrase cache in object
# storage (file:// and the real S3 server) is shared across processes.

load lib/common
load lib/moto

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	# the fake's audio: a real MP3 in ElevenLabs' format, made by ffmpeg
	EL_MP3=$BATS_FILE_TMPDIR/el.mp3
	ffmpeg -v error -f lavfi -i "sine=frequency=330:duration=1.5" -ar 44100 -ac 1 -b:a 128k \
		-f mp3 "$EL_MP3"
	export EL_MP3
	fake_start elevenlabs elevenlabs.py
	# the real S3-compatible server, for the cache shared across hosts
	moto_start voice-cache
	export MOTO_S3_ENDPOINT=$S3_ENDPOINT
	unset S3_ENDPOINT
}

teardown_file() {
	fake_stop_all
	moto_stop
	unde_teardown_file
}

setup() {
	W=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$W
	unset S3_ENDPOINT ELEVENLABS_API_KEY ELEVENLABS_VOICE_ID ELEVENLABS_API_URL
	fake_reset elevenlabs
	fake_config elevenlabs "{\"audio_file\":\"$EL_MP3\"}"
}

# A test that failed before its unserve leaves no server behind.
teardown() {
	[[ -z ${PID:-} ]] || unserve
	unde_teardown
}

# eleven: point unde-voice at the fake ElevenLabs
eleven() {
	export ELEVENLABS_API_KEY=test-key ELEVENLABS_VOICE_ID=voice123 ELEVENLABS_API_URL=$FAKE_ELEVENLABS_URL
}

# speak JSON [ARGS]: run unde-voice on one record; the record in $W/out.json,
# its audio in $W/out.mp3.
speak() {
	local rec=$1
	shift
	unde-voice "$@" <<<"$rec" >"$W/out.json" 2>"$W/err.log"
	jq -r .audio "$W/out.json" | base64 -d >"$W/out.mp3"
}

# probe FILE: "codec sample_rate channels bit_rate duration_ms"
probe() {
	ffprobe -v error -show_entries stream=codec_name,sample_rate,channels,bit_rate:format=duration \
		-of json "$1" | jq -r '[.streams[0].codec_name, .streams[0].sample_rate, .streams[0].channels,
			.streams[0].bit_rate, (.format.duration|tonumber*1000|floor)] | join(" ")'
}

@test "unde-voice --help and --version answer and exit 0" {
	run -0 unde-voice --help
	assert_output --partial "--stream"
	run -0 unde-voice --version
	assert_output --partial unde-voice
}

@test "a Russian reply becomes MP3 44.1 kHz 128 kbit/s mono of the duration it reports" {
	speak '{"text":"Привет! Я подобрала тебе три образа на вечер.","request_id":"r1","keep":1}'
	jq_e '.keep == 1 and .request_id == "r1" and .tts.provider == "local" and .tts.voice == "ru"
		and .tts.format == "mp3_44100_128" and .tts.cache == "off"' "$W/out.json"
	read -r codec rate ch br dur <<<"$(probe "$W/out.mp3")"
	assert_equal "$codec $rate $ch $br" "mp3 44100 1 128000"
	# a sentence of speech, and what the command says it made (LAME adds < 100 ms of padding)
	((dur > 1500 && dur < 8000))
	jq_e --argjson d "$dur" '(.tts.duration_ms - $d | fabs) < 150 and .tts.bytes > 10000' "$W/out.json"
	# ffmpeg decodes it whole, and it is speech, not silence (peak above -20 dBFS)
	max=$(ffmpeg -hide_banner -nostats -v info -i "$W/out.mp3" -af volumedetect -f null - 2>&1 |
		sed -n 's/.*max_volume: \(-*[0-9.]*\) dB/\1/p')
	awk -v m="$max" 'BEGIN { exit !(m != "" && m > -20) }'
}

@test "Latin text is spoken with the English voice" {
	speak '{"text":"Hello! Here are three looks for tonight."}'
	jq_e '.tts.voice == "en"' "$W/out.json"
	read -r codec _ _ _ dur <<<"$(probe "$W/out.mp3")"
	assert_equal "$codec" mp3
	((dur > 1000))
	speak '{"text":"Hello there","voice":"en-us"}'
	jq_e '.tts.voice == "en-us"' "$W/out.json"
}

@test "voice_params set espeak-ng's rate, pitch and amplitude by the documented formula" {
	local t='{"text":"Это платье отлично подойдёт для прогулки по городу вечером."}'
	speak "$(jq -c '.voice_params = {tempo:0.8, warmth:1, tension:0, expressiveness:"low"}' <<<"$t")"
	jq_e '.tts.local == {rate:140, pitch:31, amplitude:80}' "$W/out.json"
	read -r _ _ _ _ slow <<<"$(probe "$W/out.mp3")"
	speak "$(jq -c '.voice_params = {tempo:1.5, warmth:0, tension:1, expressiveness:"high"}' <<<"$t")"
	jq_e '.tts.local == {rate:263, pitch:81, amplitude:120}' "$W/out.json"
	read -r _ _ _ _ fast <<<"$(probe "$W/out.mp3")"
	# the faster tempo really speaks faster (espeak-ng keeps its pauses: not
	# in proportion, but at least a fifth shorter)
	((fast * 5 < slow * 4))
}

@test "persona's voice_params (expressiveness calm, warm, lively) are spoken as low, moderate, high" {
	local t='{"text":"Рада тебя видеть."}' w
	for w in calm:80 warm:100 lively:120; do
		speak "$(jq -c --arg e "${w%%:*}" '.voice_params = {preset:"friendly_warm", warmth:0.5, tempo:1, tension:0.3, expressiveness:$e}' <<<"$t")"
		jq_e --argjson a "${w##*:}" '.tts.local.amplitude == $a' "$W/out.json"
	done
}

@test "streaming sends chunks of at most AUDIO_CHUNK_SIZE that join into the whole MP3, then done" {
	AUDIO_CHUNK_SIZE=4096 run -0 --separate-stderr unde-voice \
		<<<'{"text":"Первое предложение. Второе предложение подлиннее, чтобы было несколько кусков.","stream":true,"request_id":"s1"}'
	n=${#lines[@]}
	((n >= 3))
	for ((i = 0; i < n - 1; i++)); do
		jq_e --argjson i "$i" '.stage == "audio" and .seq == $i and .request_id == "s1"
			and (.audio|@base64d|length) <= 4096' <<<"${lines[i]}" >/dev/null
	done
	jq_e --argjson c $((n - 1)) '.stage == "done" and .tts.chunks == $c and (has("audio")|not)
		and .tts.first_byte_ms <= .tts.total_ms' <<<"${lines[n - 1]}"
	for ((i = 0; i < n - 1; i++)); do jq -r .audio <<<"${lines[i]}" | base64 -d; done >"$W/joined.mp3"
	bytes=$(jq .tts.bytes <<<"${lines[n - 1]}")
	assert_equal "$(stat -c %s "$W/joined.mp3")" "$bytes"
	read -r codec _ _ _ dur <<<"$(probe "$W/joined.mp3")"
	assert_equal "$codec" mp3
	((dur > 2000))
}

@test "the local provider streams sentence by sentence: the first chunk is the first sentence, sent before the rest is made" {
	# buffers too large to ever fill: every chunk boundary is a sentence's end
	local t='{"text":"Первое предложение. Цена 3.5 тысячи, т. е. недорого! А третье?\nИ четвёртое","stream":true}'
	AUDIO_CHUNK_SIZE=1048576 STREAM_BUFFER_MS=10000 run -0 --separate-stderr unde-voice <<<"$t"
	# four sentences ("3.5" and "т. е." do not end one), four chunks, then done
	assert_equal "${#lines[@]}" 5
	jq_e '.stage == "done" and .tts.chunks == 4' <<<"${lines[4]}"
	for i in 0 1 2 3; do
		jq -r .audio <<<"${lines[i]}" | base64 -d >"$W/c$i.mp3"
		read -r codec _ _ _ dur <<<"$(probe "$W/c$i.mp3")"
		assert_equal "$codec" mp3
		((dur > 300))
		echo "$dur" >"$W/d$i"
	done
	# the first chunk is the first sentence's speech alone: it left when that
	# sentence was made (chunks go out as they are written, see reply_write)
	speak '{"text":"Первое предложение."}'
	read -r _ _ _ _ alone <<<"$(probe "$W/out.mp3")"
	first=$(<"$W/d0")
	((first - alone < 150 && alone - first < 150))
	# and together they are the whole reply, one valid stream
	cat "$W"/c[0-3].mp3 >"$W/joined.mp3"
	read -r codec _ _ _ dur <<<"$(probe "$W/joined.mp3")"
	assert_equal "$codec" mp3
	jq_e --argjson d "$dur" '(.tts.duration_ms - $d | fabs) < 250' <<<"${lines[4]}"
}

@test "--stream streams every record, several records one after another" {
	run -0 --separate-stderr unde-voice --stream <<<$'{"text":"Раз."}\n{"text":"Два."}'
	[[ $(jq -s '[.[] | select(.stage == "done")] | length' <<<"$output") == 2 ]]
	jq -se '[.[] | select(.stage == "audio")] | length >= 2' <<<"$output"
}

@test "the phrase cache: a second process serves the same phrase from object storage" {
	mkdir -p "$W/s3/voice"
	export S3_ENDPOINT=file://$W/s3 S3_BUCKET=voice
	speak '{"text":"Привет, рада тебя видеть!","voice_params":{"warmth":0.7}}'
	jq_e '.tts.cache == "miss"' "$W/out.json"
	cp "$W/out.mp3" "$W/first.mp3"
	objects=("$W"/s3/voice/voice-cache/local/*.mp3)
	assert_equal "${#objects[@]}" 1
	[[ $(basename "${objects[0]}") =~ ^[0-9a-f]{64}\.mp3$ ]]
	speak '{"text":"Привет, рада тебя видеть!","voice_params":{"warmth":0.7}}'
	jq_e '.tts.cache == "hit"' "$W/out.json"
	cmp "$W/first.mp3" "$W/out.mp3"
	# other voice parameters are another phrase
	speak '{"text":"Привет, рада тебя видеть!","voice_params":{"warmth":0.1}}'
	jq_e '.tts.cache == "miss"' "$W/out.json"
	# a named phrase, and the counters shared by the processes
	speak '{"text":"Добро пожаловать!","cache_key":"greeting_default"}'
	[[ -s $W/s3/voice/voice-cache/local/named/greeting_default.mp3 ]]
	UNDE_METRICS_DIR=$W speak '{"text":"Добро пожаловать!","cache_key":"greeting_default"}'
	jq_e '.tts.cache == "hit"' "$W/out.json"
	grep -q '^voice_cache_total{result="hit"} 2$' "$W/unde-voice.prom"
	grep -q '^voice_cache_total{result="miss"} 3$' "$W/unde-voice.prom"
	grep -q '^voice_tts_latency_seconds_count{phase="first_byte",provider="local"} 5$' "$W/unde-voice.prom"
	# long texts are not cached unless named
	VOICE_CACHE_MAX_TEXT=5 speak '{"text":"Длинная фраза не кэшируется."}'
	jq_e '.tts.cache == "miss"' "$W/out.json"
	assert_equal "$(find "$W/s3/voice/voice-cache" -name '*.mp3' | wc -l)" 3
}

@test "bad records get an error naming the field, the stream goes on, exit 65" {
	run -65 --separate-stderr unde-voice <<<$'{"text":""}\n{"text":5}\n{"text":"ok","voice_params":{"tempo":9}}\n{"text":"ok","cache_key":"../x"}\n{"text":"ok","voice_params":{"expressiveness":"loud"}}\n{"text":"Да."}'
	assert_equal "${#lines[@]}" 1
	jq_e '.tts.provider == "local"' <<<"${lines[0]}"
	errs=$(jq -sc '[.[] | select(.level == "error") | .error.message]' <<<"$stderr")
	jq_e 'length == 5 and (.[0]|test("text")) and (.[1]|test("text")) and (.[2]|test("voice_params.tempo"))
		and (.[3]|test("cache_key")) and (.[4]|test("expressiveness"))' <<<"$errs"
}

@test "online, a refused record answers with an error line" {
	UNDE_ONLINE=1 run -65 --separate-stderr unde-voice <<<$'{"text":""}\n{"text":"Да."}'
	assert_equal "${#lines[@]}" 2
	jq_e '.error.code == "invalid_field"' <<<"${lines[0]}"
	jq_e '.tts.provider == "local"' <<<"${lines[1]}"
}

@test "AUDIO_FORMAT other than mp3_44100_128 is a configuration error naming it" {
	AUDIO_FORMAT=pcm_16000 run -78 --separate-stderr unde-voice <<<'{"text":"Да."}'
	[[ $stderr == *AUDIO_FORMAT* ]]
}

# serve ROUTES: unde-httpd behind a real superserver on a free port; sets PORT, PID.
serve() {
	local try i
	for ((try = 0; try < 20; try++)); do
		PORT=$(unde_port_candidate)
		(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && continue
		systemd-socket-activate --inetd -a -l "127.0.0.1:$PORT" -E UNDE_ENV_FILE=/dev/null \
			-E "PATH=$PATH" -E "UNDE_COUNTERS_DIR=$W" ${S3_ENDPOINT:+-E "S3_ENDPOINT=$S3_ENDPOINT"} \
			${S3_BUCKET:+-E "S3_BUCKET=$S3_BUCKET"} \
			${ELEVENLABS_API_KEY:+-E "ELEVENLABS_API_KEY=$ELEVENLABS_API_KEY"} \
			${ELEVENLABS_VOICE_ID:+-E "ELEVENLABS_VOICE_ID=$ELEVENLABS_VOICE_ID"} \
			${ELEVENLABS_API_URL:+-E "ELEVENLABS_API_URL=$ELEVENLABS_API_URL"} unde-httpd --routes "$1" \
			--metrics-file "$W/httpd.metrics" </dev/null 2>>"$W/httpd.log" 3>&- &
		PID=$!
		for ((i = 0; i < 200; i++)); do
			curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health" && return 0
			sleep 0.05
		done
		kill "$PID" 2>/dev/null || true
	done
	return 1
}

unserve() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=
}

@test "POST /synthesize through unde-httpd answers audio/mpeg that decodes, twice on one connection" {
	serve "$UNDE_TOP_SRCDIR/etc/httpd/voice.routes"
	run curl -sS --max-time 20 -D "$W/h" -o "$W/a.mp3" -H 'X-Request-Id: syn-1' \
		-d '{"text":"Привет! Как дела?","voice_params":{"warmth":0.7,"tempo":1.0,"tension":0.2}}' \
		"http://127.0.0.1:$PORT/synthesize" --next --max-time 20 -o "$W/b.mp3" \
		-d '{"text":"Hello again."}' "http://127.0.0.1:$PORT/synthesize"
	local rc=$status
	run curl -sS --max-time 10 -o "$W/err.json" -w '%{http_code}' -d '{"text":""}' \
		"http://127.0.0.1:$PORT/synthesize"
	local err=$output
	run curl -sS --max-time 10 "http://127.0.0.1:$PORT/metrics"
	unserve
	# one filter process served both requests of the kept-alive connection
	grep -q '^unde_httpd_children_started_total 2$' <<<"$output"
	output=$err
	assert_equal "$rc" 0
	grep -qi '^Content-Type: audio/mpeg' "$W/h"
	grep -qi '^X-Request-Id: syn-1' "$W/h"
	read -r codec rate _ br dur <<<"$(probe "$W/a.mp3")"
	assert_equal "$codec $rate $br" "mp3 44100 128000"
	((dur > 800))
	read -r codec _ _ _ dur <<<"$(probe "$W/b.mp3")"
	assert_equal "$codec" mp3
	# a refused text is a JSON 400, not audio
	assert_output 400
	jq_e '.error.code == "invalid_field"' "$W/err.json"
	[[ $(grep -c '"route":"POST /synthesize"' "$W/httpd.log") == 3 ]]
}

@test "WS /stream through unde-httpd: binary MP3 chunks as they are made, then the timings, several messages" {
	serve "$UNDE_TOP_SRCDIR/etc/httpd/voice-ws.routes"
	run timeout 60 /usr/bin/python3 "$UNDE_TOP_SRCDIR/t/fixtures/httpd/wsclient.py" \
		"ws://127.0.0.1:$PORT/stream" --save "$W" \
		'{"text":"Привет! Сегодня отличный день для прогулки.","voice_params":{"warmth":0.7,"tempo":1.0,"tension":0.2},"stream":true}' \
		'{"text":"And here is the second reply.","previous_text":"Привет!","stream":true,"request_id":"ws-2"}'
	unserve
	assert_success
	assert_equal "${#lines[@]}" 2
	for i in 0 1; do
		jq_e '(.binary|length) >= 2 and all(.binary[]; . <= 4096) and .text.stage == "done"
			and .text.tts.chunks == (.binary|length) and .text.tts.bytes == (.binary|add)
			and (.text|has("audio")|not)' <<<"${lines[i]}"
		read -r codec rate _ _ dur <<<"$(probe "$W/$i.bin")"
		assert_equal "$codec $rate" "mp3 44100"
		((dur > 1000))
	done
	jq_e '.text.request_id == "ws-2" and .text.tts.voice == "en"' <<<"${lines[1]}"
	grep -q '"route":"WS /stream","status":101' "$W/httpd.log"
}

# ------------------------------------------------------------ ElevenLabs (fake)

@test "ElevenLabs: §12's mapping exactly, xi-api-key, and its MP3 passed on byte for byte" {
	eleven
	speak '{"text":"Привет!","voice_params":{"warmth":0.7,"tempo":1.1,"tension":0.2},"previous_text":"Раньше","next_text":"Потом","request_id":"el-1"}'
	jq_e '.tts.provider == "elevenlabs" and .tts.bytes > 0' "$W/out.json"
	cmp "$EL_MP3" "$W/out.mp3"
	run -0 fake_requests elevenlabs
	jq_e 'length == 1 and .[0].path == "/v1/text-to-speech/voice123" and .[0].args.output_format == "mp3_44100_128"
		and .[0].headers["xi-api-key"] == "test-key" and .[0].headers["x-request-id"] == "el-1"
		and .[0].json.model_id == "eleven_v3_conversational" and .[0].json.text == "Привет!"
		and .[0].json.previous_text == "Раньше" and .[0].json.next_text == "Потом"
		and (.[0].json.voice_settings | (.stability - 0.61 | fabs) < 1e-9 and .similarity_boost == 0.7
			and (.style - 0.5 | fabs) < 1e-9 and .use_speaker_boost == true and (.speed - 1.1 | fabs) < 1e-9)' <<<"$output"
	# style is capped at 1; the key never reaches the output or the log
	speak '{"text":"Да","voice_params":{"tension":0.9}}'
	run -0 fake_requests elevenlabs
	jq_e '.[1].json.voice_settings.style == 1' <<<"$output"
	! grep -q test-key "$W/out.json" "$W/err.log"
}

@test "ElevenLabs streaming: the /stream endpoint's chunks go out as they arrive and join into its MP3" {
	eleven
	fake_config elevenlabs '{"chunk_size":1000}'
	AUDIO_CHUNK_SIZE=4096 run -0 --separate-stderr unde-voice <<<'{"text":"Hello","stream":true}'
	n=${#lines[@]}
	jq_e '.stage == "done" and .tts.provider == "elevenlabs"' <<<"${lines[n - 1]}"
	for ((i = 0; i < n - 1; i++)); do jq -r .audio <<<"${lines[i]}" | base64 -d; done >"$W/joined.mp3"
	cmp "$EL_MP3" "$W/joined.mp3"
	run -0 fake_requests elevenlabs
	jq_e '.[0].path == "/v1/text-to-speech/voice123/stream"' <<<"$output"
}

# fallback CASE: ElevenLabs fails that way; espeak-ng answers instead, and
# the failure is counted under reason.
fallback() {
	local reason=$1
	UNDE_METRICS_DIR=$W speak '{"text":"Привет, как дела?"}'
	jq_e '.tts.provider == "local" and .tts.voice == "ru"' "$W/out.json"
	read -r codec _ _ _ dur <<<"$(probe "$W/out.mp3")"
	assert_equal "$codec" mp3
	((dur > 500))
	grep -q "^voice_elevenlabs_errors_total{reason=\"$reason\"} 1$" "$W/unde-voice.prom"
	grep -q '"msg":"ElevenLabs failed, falling back to espeak-ng"' "$W/err.log"
}

@test "ElevenLabs 401 (bad key): espeak-ng answers, the error is counted" {
	eleven
	ELEVENLABS_API_KEY=wrong-key fallback 401
	grep -q 'invalid_api_key' "$W/err.log"
}

@test "ElevenLabs 429 and 500, retried within its timeout, then espeak-ng" {
	eleven
	fake_fail elevenlabs '{"mode":"429","retry_after":"0","count":-1}'
	fallback 429
	run -0 fake_requests elevenlabs
	jq_e 'length == 2' <<<"$output"
	fake_reset elevenlabs
	fake_config elevenlabs "{\"audio_file\":\"$EL_MP3\"}"
	fake_fail elevenlabs '{"mode":"500","count":-1}'
	fallback 500
}

@test "ElevenLabs slower than ELEVENLABS_TIMEOUT: espeak-ng answers in time" {
	eleven
	fake_fail elevenlabs '{"mode":"hang","delay_ms":20000,"count":-1}'
	local t0=${EPOCHREALTIME/[.,]/}
	ELEVENLABS_TIMEOUT=0.5 fallback timeout
	(( (${EPOCHREALTIME/[.,]/} - t0) < 10000000 ))
}

@test "ElevenLabs answering 200 with something that is not MP3: espeak-ng answers" {
	eleven
	fake_config elevenlabs '{"garbage":true}'
	fallback garbage
}

@test "ElevenLabs cut mid-stream: a clean error after the chunks sent, or espeak-ng when none were" {
	eleven
	fake_config elevenlabs '{"chunk_size":1024,"cut_after":3}'
	AUDIO_CHUNK_SIZE=1024 UNDE_ONLINE=1 run -75 --separate-stderr unde-voice <<<'{"text":"Hello","stream":true,"request_id":"cut-1"}'
	n=${#lines[@]}
	((n >= 2))
	jq_e '.stage == "audio"' <<<"${lines[0]}"
	jq_e '.error.code == "upstream_cut" and .request_id == "cut-1"' <<<"${lines[n - 1]}"
	# not streaming: nothing was sent yet, so espeak-ng still answers
	speak '{"text":"Hello"}'
	jq_e '.tts.provider == "local"' "$W/out.json"
}

@test "the phrase cache holds ElevenLabs' audio too: a second process does not call it" {
	eleven
	mkdir -p "$W/s3/voice"
	export S3_ENDPOINT=file://$W/s3 S3_BUCKET=voice
	speak '{"text":"Добро пожаловать!","cache_key":"greeting_default"}'
	jq_e '.tts.provider == "elevenlabs" and .tts.cache == "miss"' "$W/out.json"
	[[ -s $W/s3/voice/voice-cache/elevenlabs/named/greeting_default.mp3 ]]
	speak '{"text":"Добро пожаловать!","cache_key":"greeting_default"}'
	jq_e '.tts.provider == "elevenlabs" and .tts.cache == "hit"' "$W/out.json"
	cmp "$EL_MP3" "$W/out.mp3"
	run -0 fake_requests elevenlabs
	jq_e 'length == 1' <<<"$output"
}

@test "WS /stream with ElevenLabs at its pace, and a clean error frame when it is cut mid-stream" {
	eleven
	fake_config elevenlabs '{"chunk_size":2048,"chunk_delay_ms":30}'
	serve "$UNDE_TOP_SRCDIR/etc/httpd/voice-ws.routes"
	run timeout 60 /usr/bin/python3 "$UNDE_TOP_SRCDIR/t/fixtures/httpd/wsclient.py" \
		"ws://127.0.0.1:$PORT/stream" --save "$W" '{"text":"Hello","stream":true}'
	assert_success
	jq_e '.text.tts.provider == "elevenlabs" and (.binary|length) >= 3' <<<"$output"
	cmp "$EL_MP3" "$W/0.bin"
	fake_config elevenlabs '{"chunk_size":1024,"chunk_delay_ms":150,"cut_after":4}'
	run timeout 60 /usr/bin/python3 "$UNDE_TOP_SRCDIR/t/fixtures/httpd/wsclient.py" \
		"ws://127.0.0.1:$PORT/stream" '{"text":"Hello","stream":true}' '{"text":"again","stream":true}'
	unserve
	assert_success
	jq_e '(.binary|length) >= 1 and .text.error.code == "upstream_cut"' <<<"${lines[0]}"
	# the connection goes on: the next message is answered (the cut again, before any chunk:
	# espeak-ng) or cut again after chunks; either way a final text message comes
	jq_e '.text.stage == "done" or .text.error.code == "upstream_cut"' <<<"${lines[1]}"
}

@test "the phrase cache on a real S3 server (signed requests): what one host made, another serves" {
	export S3_ENDPOINT=$MOTO_S3_ENDPOINT S3_BUCKET=voice-cache
	speak '{"text":"Спасибо, записала!","request_id":"host-a"}'
	jq_e '.tts.cache == "miss"' "$W/out.json"
	cp "$W/out.mp3" "$W/a.mp3"
	# "another host": a fresh process, sharing nothing with the first but the bucket
	UNDE_COUNTERS_DIR=$(mktemp -d "$W/b.XXXXXX") speak '{"text":"Спасибо, записала!","request_id":"host-b"}'
	jq_e '.tts.cache == "hit"' "$W/out.json"
	cmp "$W/a.mp3" "$W/out.mp3"
	# a wrong secret is a failed lookup, logged; the phrase is still spoken
	S3_SECRET_KEY=wrong speak '{"text":"Спасибо, записала!"}'
	jq_e '.tts.cache == "miss" and .tts.provider == "local"' "$W/out.json"
	grep -q '"msg":"phrase cache read failed"' "$W/err.log"
}

# objects KEY-PREFIX: "key size epoch" of each object under it in the moto bucket, oldest first
objects() {
	# (no --prefix: moto refuses the signature of a query with %2F in it)
	moto_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --output json |
		jq -r --arg p "$1" '(.Contents // [])[] | select(.Key | startswith($p)) | "\(.Key) \(.Size) \(.LastModified)"' |
		while read -r k s t; do echo "$k $s $(date -d "$t" +%s)"; done | sort -k3,3n -k1,1
}

@test "prune on a real S3 server: the oldest phrases go until VOICE_CACHE_MAX_BYTES, a dry run removes nothing" {
	export S3_ENDPOINT=$MOTO_S3_ENDPOINT S3_BUCKET=voice-cache VOICE_CACHE_PREFIX=prune-size/
	local t
	for t in "Первая фраза." "Вторая фраза." "Третья фраза."; do
		speak "$(jq -nc --arg t "$t" '{text: $t}')"
		jq_e '.tts.cache == "miss"' "$W/out.json"
	done
	mapfile -t objs < <(objects prune-size/)
	assert_equal "${#objs[@]}" 3
	read -r ka sa _ <<<"${objs[0]}"
	read -r _ sb _ <<<"${objs[1]}"
	read -r _ sc _ <<<"${objs[2]}"
	# room for two: the first written goes
	run -0 --separate-stderr unde-voice prune --dry-run --max-bytes $((sb + sc))
	assert_equal "${#lines[@]}" 1
	jq_e --arg k "$ka" '.key == $k and .reason == "size" and .removed == false' <<<"${lines[0]}"
	assert_equal "$(objects prune-size/ | wc -l)" 3
	UNDE_METRICS_DIR=$W run -0 --separate-stderr unde-voice prune --max-bytes $((sb + sc))
	jq_e --arg k "$ka" --argjson s "$sa" '.key == $k and .bytes == $s and .reason == "size" and .removed' <<<"$output"
	grep -q '^voice_cache_pruned_total{reason="size"} 1$' "$W/unde-voice.prom"
	run objects prune-size/
	assert_equal "${#lines[@]}" 2
	refute_output --partial "$ka"
	# the evicted phrase is made again; the kept ones are still served
	speak '{"text":"Первая фраза."}'
	jq_e '.tts.cache == "miss"' "$W/out.json"
	speak '{"text":"Третья фраза."}'
	jq_e '.tts.cache == "hit"' "$W/out.json"
	# within the bound: nothing to do
	run -0 --separate-stderr unde-voice prune --max-bytes $((sa + sb + sc + 100000))
	assert_output ""
	assert_equal "$(objects prune-size/ | wc -l)" 3
}

@test "prune on a real S3 server: phrases written more than VOICE_CACHE_MAX_AGE_DAYS ago go, younger ones stay" {
	export S3_ENDPOINT=$MOTO_S3_ENDPOINT S3_BUCKET=voice-cache VOICE_CACHE_PREFIX=prune-age/
	speak '{"text":"Старая фраза."}'
	speak '{"text":"Добро пожаловать!","cache_key":"greeting_default"}'
	mapfile -t objs < <(objects prune-age/)
	assert_equal "${#objs[@]}" 2
	read -r _ _ newest <<<"${objs[1]}"
	# 29 days on, under a 30-day bound: both stay
	VOICE_CACHE_MAX_AGE_DAYS=30 run -0 --separate-stderr unde-voice prune --now $((newest + 29 * 86400))
	assert_output ""
	assert_equal "$(objects prune-age/ | wc -l)" 2
	# 31 days on: both go, as too old (the size bound is far)
	VOICE_CACHE_MAX_AGE_DAYS=30 run -0 --separate-stderr unde-voice prune --now $((newest + 31 * 86400))
	assert_equal "${#lines[@]}" 2
	jq -se 'all(.reason == "age" and .removed) and (map(.key) | any(. == "prune-age/local/named/greeting_default.mp3"))' <<<"$output"
	assert_equal "$(objects prune-age/ | wc -l)" 0
	jq_e 'select(.msg == "phrase cache pruned") | .removed_age == 2 and .kept == 0' <<<"$stderr"
}

@test "prune: a store that refuses the listing is exit 69, named in the log; no S3_ENDPOINT is nothing to do" {
	export S3_ENDPOINT=$MOTO_S3_ENDPOINT S3_BUCKET=voice-cache
	S3_SECRET_KEY=wrong run -69 --separate-stderr unde-voice prune
	jq_e 'select(.msg == "cannot list the phrase cache") | .code == "SignatureDoesNotMatch"' <<<"$stderr"
	unset S3_ENDPOINT
	run -0 --separate-stderr unde-voice prune
	assert_output ""
	run -64 --separate-stderr unde-voice prune --max-bytes lots
}

@test "prune on the file:// store: by age and by size, leaving writes in progress alone" {
	mkdir -p "$W/s3/voice"
	export S3_ENDPOINT=file://$W/s3 S3_BUCKET=voice
	speak '{"text":"Раз."}'
	speak '{"text":"Два."}'
	speak '{"text":"Три."}'
	mapfile -t f < <(ls "$W"/s3/voice/voice-cache/local/*.mp3)
	touch -d '40 days ago' "${f[0]}"
	touch -d '2 days ago' "${f[1]}"
	touch -d '40 days ago' "$W/s3/voice/voice-cache/local/.x.mp3.tmp.1.ab"
	run -0 --separate-stderr unde-voice prune --max-bytes "$(stat -c %s "${f[2]}")"
	assert_equal "${#lines[@]}" 2
	jq_e '.reason == "age"' <<<"${lines[0]}"
	jq_e '.reason == "size"' <<<"${lines[1]}"
	[[ -e ${f[2]} && ! -e ${f[0]} && ! -e ${f[1]} ]]
	[[ -e $W/s3/voice/voice-cache/local/.x.mp3.tmp.1.ab ]]
}
