#!/usr/bin/env bats
# unde-llm: one dialogue turn on a real shard (and production for routing,
# tombstones and the catalog): frames, hybrid search, the filters, the
# ContextPack, the provider chain with fakes, the local responder, saving.

load lib/common
load lib/pg
load lib/fake
load lib/httpd
load lib/moto
load lib/recog

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	for f in deepseek gemini claude qwen echo; do fake_start "$f" "$f.py"; done
	pg_start
	export UNDE_T_PROD UNDE_T_S0
	UNDE_T_PROD=$(pg_migrated_db prod production)
	UNDE_T_S0=$(pg_shard_db shard0 0)
}

teardown_file() {
	fake_stop_all || true
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
	for f in deepseek gemini claude qwen echo; do fake_reset "$f"; done
}

teardown() {
	# the photo test's S3 server goes with it, pass or fail
	declare -F moto_stop >/dev/null && moto_stop
	unde_teardown
}

sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# seed CONTENT [EXTRA-JSON-MEMBERS] — a user message of $U saved N days ago
# (DAYS, default 30), embedded by the local model afterwards (embed_all).
seed() {
	jq -nc --arg u "$U" --arg id "$(uuid)" --arg c "$1" --argjson x "${2:-{\}}" --arg d "${DAYS:-30}" \
		'{user_id: $u, messages: [{id: $id, role: "user", content: $c,
		  created_at: (now - ($d | tonumber) * 86400 | todate)} + $x]}' |
		unde-shard save >/dev/null 2>&1
}
embed_all() { unde-embed --pending >/dev/null 2>&1; }
# one_recognition_row URL — the user's one recognition_requests row is in
# that production
one_recognition_row() {
	[ "$(psql -XAt "$1" -c "select count(*) from recognition_requests where user_id = '$U'")" = 1 ]
}
# filler N — N short chats saved a day ago, so seeds leave the recent window
filler() {
	for i in $(seq "$1"); do DAYS=1 seed "Просто болтаем про разное номер $i"; done
}

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

@test "a fact said in turn 1 (не ем глютен) is in the ContextPack of turn 6, and from the hybrid search once it left the recent messages" {
	say "Кстати, я не ем глютен, у меня непереносимость"
	unde-embed --pending >/dev/null 2>&1
	for m in "Привет, как твои дела сегодня?" "Мне нравится стиль casual и синий цвет" \
		"Вчера смотрела корейский триллер в кино" "Подруга зовёт на выходных в парк"; do
		say "$m"
		unde-embed --pending >/dev/null 2>&1
	done
	say "Где в торговом центре поесть без глютена?"
	run jq -r .context_pack.text "$TMP/out"
	assert_output --partial 'не ем глютен'
	for m in "Посоветуй что-нибудь на вечер" "Какая погода будет завтра?"; do
		say "$m"
		unde-embed --pending >/dev/null 2>&1
	done
	say "Что взять перекусить, если глютен нельзя?"
	run jq -c .context_pack.blocks "$TMP/out"
	assert_jq '[.C[] | select(test("не ем глютен"))] | length == 0'
	assert_jq '[.B[] | select(test("не ем глютен"))] | length == 1'
}

@test "the density cap: at most 3 episodes per answer and at most 3 of any 10 answers use memories" {
	# on five days: search keeps at most 3 episodes of one day
	d=30
	for c in "Обожаю шелковые платья миди" "Шелковые платья мне идут больше всего" \
		"Купила шелковые платья на распродаже" "Мама тоже любит шелковые платья" \
		"Шелковые платья надо сдавать в химчистку"; do DAYS=$((d++)) seed "$c"; done
	filler 10
	embed_all
	for i in $(seq 12); do
		say "Хочу ещё шелковые платья, посоветуешь что-нибудь? ($i)"
		jq -c '{n: .episodes_used, dropped: [.context_pack.episodes_dropped[].reason] | unique}' "$TMP/out"
	done >"$TMP/uses"
	run jq -sc '[.[].n]' "$TMP/uses"
	# the first three answers use memories (at most 3 each), then the rolling
	# window of 10 is full until the first of them leaves it (answer 11)
	assert_output '[3,3,3,0,0,0,0,0,0,0,3,3]'
	# (the earlier turns of this very conversation are dropped too, as
	# in_recent_messages, now that full text finds them)
	jq -se '(.[3].dropped | index("density_cap_rolling_10")) and (.[0].dropped | index("max_episodes_per_response"))' "$TMP/uses"
	jq -se '[.[3].dropped, .[0].dropped] | flatten | all(. == "density_cap_rolling_10" or . == "max_episodes_per_response" or . == "in_recent_messages")' "$TMP/uses"
	run sql0 "select string_agg(episodes_used::text, ',' order by created_at) from llm_answer_meta where user_id = '$U'"
	assert_output '3,3,3,0,0,0,0,0,0,0,3,3'
	# with the cap off, every answer may recall
	MAX_MEMORY_DENSITY_ROLLING_10=1 say "Шелковые платья — что ещё есть?"
	output=$(<"$TMP/out")
	assert_jq '.episodes_used == 3'
}

@test "the emotional filter: a fragile mood leaves painful episodes out, a good mood keeps them" {
	seed "Мой дедушка умер весной, мы с ним гуляли в парке Сафа" '{"mood_frame":{"emotion":{"valence":-0.8}}}'
	seed "Люблю гулять в парке Сафа по вечерам"
	seed "В парке Сафа я поссорилась с подругой, до сих пор обидно" '{"memory_type":"emotion"}'
	DAYS=31 seed "После похорон тёти мы сидели в парке Сафа"
	filler 10
	export MAX_EPISODES_PER_RESPONSE=5
	embed_all
	sad='{"mood_frame":{"emotion":{"valence":-0.6,"arousal":0.3},"signals":{"frustration":0.2}}}'
	say "Грустно сегодня, может погулять в парке Сафа?" "$sad"
	run jq -c '.context_pack' "$TMP/out"
	assert_jq '[.blocks.B[] | select(test("Люблю гулять"))] | length == 1'
	assert_jq '[.blocks.B[] | select(test("дедушка|поссорилась|похорон"))] | length == 0'
	assert_jq '[.episodes_dropped[] | select(.reason == "emotional_filter")] | length == 3'
	assert_jq '.blocks.D | test("хрупкое")'
	happy='{"mood_frame":{"emotion":{"valence":0.7,"arousal":0.6}}}'
	say "Отличный день, пойду гулять в парке Сафа!" "$happy"
	run jq -c '.context_pack' "$TMP/out"
	assert_jq '[.blocks.B[] | select(test("дедушка|похорон|поссорилась"))] | length == 3'
	assert_jq '[.episodes_dropped[]? | select(.reason == "emotional_filter")] | length == 0'
}

# providers KEY… — point the four providers at their fakes with keys.
providers() {
	export DEEPSEEK_API_URL=$FAKE_DEEPSEEK_URL GEMINI_API_URL=$FAKE_GEMINI_URL
	export CLAUDE_API_URL=$FAKE_CLAUDE_URL QWEN_API_URL=$FAKE_QWEN_URL
	export DEEPSEEK_API_KEY=test-key GEMINI_API_KEY=test-key CLAUDE_API_KEY=test-key QWEN_API_KEY=test-key
}

@test "the primary provider answers with the ContextPack as its system prompt, and the cost is counted" {
	providers
	fake_config deepseek '{"reply_text":"Ответ DeepSeek."}'
	say "Привет! Что наденем сегодня?"
	run cat "$TMP/out"
	assert_jq '.provider == "deepseek" and .text == "Ответ DeepSeek." and .model_used == "deepseek-chat"'
	assert_jq '(.providers_skipped // []) == [] and .tokens == {"in":50,"out":40}'
	# 50 × 0.27 + 40 × 1.10 per million
	assert_jq '.cost_usd > 0.0000574 and .cost_usd < 0.0000576'
	run fake_requests deepseek
	assert_jq 'length == 1 and .[0].json.messages[0].role == "system"'
	assert_jq '.[0].json.messages[0].content | test("\\[System Prompt\\]") and test("\\[Последние сообщения\\]")'
	assert_jq '.[0].json.messages[1].content == "Привет! Что наденем сегодня?"'
	am=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select content, model_used from messages where id = '$am'"
	assert_output 'Ответ DeepSeek.|deepseek-chat'
}

@test "provider fallback goes deepseek → gemini → claude → qwen in order, each failure named" {
	providers
	fake_fail deepseek '{"mode":"500","count":-1}'
	fake_fail gemini '{"mode":"429","retry_after":"120","count":-1}'
	fake_config gemini '{"reply_text":"не должен ответить"}'
	say "Подскажи что-нибудь"
	run cat "$TMP/out"
	assert_jq '.provider == "claude" and .text == "Привет от Claude."'
	assert_jq '[.providers_skipped[] | [.provider, .reason]] == [["deepseek","5xx"],["gemini","429"]]'
	run fake_requests claude
	assert_jq '.[0].headers["anthropic-version"] == "2023-06-01" and .[0].json.max_tokens > 0'
	assert_jq '.[0].json.system | test("\\[System Prompt\\]")'
	# claude answers with no text: malformed, so qwen (DashScope's OpenAI mode)
	fake_config claude '{"reply_blocks":[]}'
	say "А ещё?"
	run cat "$TMP/out"
	assert_jq '.provider == "qwen" and .text == "Привет от Qwen." and .model_used == "qwen-plus"'
	assert_jq '[.providers_skipped[] | .reason] == ["5xx","429","malformed"]'
	# LLM_PRIMARY_PROVIDER and LLM_FALLBACK_PROVIDERS choose the order
	LLM_PRIMARY_PROVIDER=qwen LLM_FALLBACK_PROVIDERS=deepseek say "И ещё"
	output=$(<"$TMP/out")
	assert_jq '.provider == "qwen" and (.providers_skipped // []) == []'
}

@test "every provider failing or hanging falls to the local responder within the turn's budget" {
	providers
	fake_fail deepseek '{"mode":"hang","delay_ms":20000,"count":-1}'
	fake_fail gemini '{"mode":"malformed","count":-1}'
	fake_fail claude '{"mode":"529","count":-1}'
	fake_fail qwen '{"mode":"close","count":-1}'
	start=${EPOCHREALTIME/[.,]/}
	LLM_TIMEOUT=1 say "Где купить льняную рубашку?"
	end=${EPOCHREALTIME/[.,]/}
	run cat "$TMP/out"
	assert_jq '.provider == "local" and (.text | length) > 0'
	assert_jq '[.providers_skipped[] | [.provider, .reason]] == [["deepseek","timeout"],["gemini","malformed"],["claude","5xx"],["qwen","unreachable"]]'
	(((end - start) / 1000 < 10000))
	run cat "$TMP/err"
	refute_output --partial 'test-key'
}

@test "the local responder names only products production has in stock, with store and price, and says so when none match" {
	psql -XAtq "$UNDE_T_PROD" <<-SQL
	insert into malls (id, name, timezone, latitude, longitude) values ('dubai-hills', 'Dubai Hills Mall', 'Asia/Dubai', 25.1, 55.2) on conflict do nothing;
	insert into stores (id, mall_id, name, brand, floor, external_store_id) values
	  ('zara-dh', 'dubai-hills', 'Zara', 'ZARA', 1, 6643) on conflict do nothing;
	insert into products (source, sku, brand, name, price, currency, category, available, availability) values
	  ('apify_zara', 'LN-100', 'ZARA', 'Рубашка льняная оверсайз', 129.00, 'AED', 'рубашки', true, '{"6643":["M"]}'),
	  ('apify_zara', 'LN-200', 'ZARA', 'Рубашка льняная укороченная', 99.00, 'AED', 'рубашки', false, '{}')
	on conflict do nothing;
	SQL
	say "Где купить льняную рубашку?" '{"mall_id":"dubai-hills"}'
	run cat "$TMP/out"
	assert_jq '.intent == "catalog" and .provider == "local"'
	assert_jq '.text | test("Рубашка льняная оверсайз за 129.00 AED \\(Zara, этаж 1\\)")'
	assert_jq '.text | test("укороченная") | not'
	assert_jq '.context_pack.blocks.E | any(test("SKU LN-100"))'
	say "Где купить бархатный смокинг?"
	output=$(<"$TMP/out")
	assert_jq '.text | test("не нашла подходящих вещей")'
}

@test "an answer that presents products is an artifact: its response_description is saved and the next turn refers to it; a plain answer has none" {
	psql -XAtq "$UNDE_T_PROD" <<-SQL
	insert into malls (id, name, timezone, latitude, longitude) values ('dubai-hills', 'Dubai Hills Mall', 'Asia/Dubai', 25.1, 55.2) on conflict do nothing;
	insert into stores (id, mall_id, name, brand, floor, external_store_id) values
	  ('zara-dh', 'dubai-hills', 'Zara', 'ZARA', 1, 6643) on conflict do nothing;
	insert into products (source, sku, brand, name, price, currency, category, available, availability) values
	  ('apify_zara', 'LN-100', 'ZARA', 'Рубашка льняная оверсайз', 129.00, 'AED', 'рубашки', true, '{"6643":["M"]}')
	on conflict do nothing;
	SQL
	say "Привет, как дела?"
	plain=$(jq -r .assistant_message_id "$TMP/out")
	output=$(<"$TMP/out")
	assert_jq 'has("artifact") | not'
	say "Где купить льняную рубашку?"
	output=$(<"$TMP/out")
	assert_jq '.artifact.type == "products" and [.artifact.items[].sku] == ["LN-100"] and .artifact.items[0].store == "Zara"'
	art=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select coalesce(response_description, '-') from messages where id in ('$plain', '$art') order by id = '$art'"
	assert_line --index 0 '-'
	assert_line --index 1 --regexp '^products: ZARA Рубашка льняная оверсайз рубашки, SKU LN-100, store Zara, 129 AED$'
	# the reaction right after: reply_to_id resolves to the artifact, block F holds it
	say "Дороговато, а подешевле?"
	output=$(<"$TMP/out")
	assert_jq '.context_pack.blocks.F | tostring | test("SKU LN-100")'
	um=$(jq -r .user_message_id "$TMP/out")
	run sql0 "select reply_to_id from messages where id = '$um'"
	assert_output "$art"
	# a provider's answer is an artifact only for the products it names
	providers
	fake_config deepseek '{"reply_text":"Посмотри Рубашка льняная оверсайз — она лёгкая."}'
	say "Где купить льняную рубашку?"
	output=$(<"$TMP/out")
	assert_jq '.provider == "deepseek" and [.artifact.items[].sku] == ["LN-100"]'
	fake_config deepseek '{"reply_text":"Лён хорош в жару, но я бы начала с размера."}'
	say "Где купить льняную рубашку?"
	output=$(<"$TMP/out")
	assert_jq '.provider == "deepseek" and (has("artifact") | not)'
}

@test "the local responder matches Russian colour and garment words against the English catalogue, and a colour asked for is a colour required" {
	psql -XAtq "$UNDE_T_PROD" <<-SQL
	insert into products (source, sku, brand, name, price, currency, category, colour, available, availability) values
	  ('apify_zara', 'GS-1', 'ZARA', 'Midi skirt with slit', 159.00, 'AED', 'Skirts', 'Bottle green', true, '{"6643":["S"]}'),
	  ('apify_zara', 'GS-2', 'ZARA', 'Pleated skirts', 139.00, 'AED', 'Skirts', 'Green', true, '{"6643":["M"]}'),
	  ('apify_zara', 'RD-1', 'ZARA', 'Satin dress', 249.00, 'AED', 'Dresses', 'Red', true, '{"6643":["M"]}'),
	  ('apify_zara', 'EM-1', 'ZARA', 'Embroidered tiered skirt', 189.00, 'AED', 'Skirts', 'Ecru', true, '{"6643":["M"]}'),
	  ('apify_zara', 'RS-9', 'ZARA', 'Red mini skirt', 99.00, 'AED', 'Skirts', 'Red', false, '{}')
	on conflict do nothing;
	SQL
	say "Покажи зелёную юбку"
	run cat "$TMP/out"
	assert_jq '.intent == "catalog" and .provider == "local"'
	assert_jq '[.context_pack.blocks.E[] | select(test("SKU")) | capture("SKU (?<s>[A-Z]+-[0-9])").s] | sort == ["GS-1","GS-2"]'
	assert_jq '.text | test("Midi skirt with slit за 159.00 AED")'
	# the only red skirt is out of stock: no green skirt, no red dress, no
	# "embroidered" (red inside a word) instead
	say "red skirt please"
	output=$(<"$TMP/out")
	assert_jq '[.context_pack.blocks.E[] | select(test("SKU"))] == []'
	assert_jq '.text | test("не нашла подходящих вещей")'
	say "Где найти красное платье?"
	output=$(<"$TMP/out")
	assert_jq '[.context_pack.blocks.E[] | select(test("SKU")) | capture("SKU (?<s>[A-Z]+-[0-9])").s] == ["RD-1"]'
	# a compound colour and two colours as alternatives
	say "Есть тёмно-зелёные или красные платья и юбки?"
	output=$(<"$TMP/out")
	assert_jq '[.context_pack.blocks.E[] | select(test("SKU")) | capture("SKU (?<s>[A-Z]+-[0-9])").s] | sort == ["GS-1","GS-2","RD-1"]'
	# a garment alone finds every skirt in stock, the red one out of stock stays out
	say "skirts"
	output=$(<"$TMP/out")
	assert_jq '[.context_pack.blocks.E[] | select(test("SKU")) | capture("SKU (?<s>[A-Z]+-[0-9])").s] | sort == ["EM-1","GS-1","GS-2"]'
}

@test "missing sensors: the real siblings behind unde-httpd fill what the pipe lacks, a late one is replaced by its default" {
	cat >"$TMP/routes" <<-EOF
	POST /analyze timeout=5 unde-mood
	POST /persona timeout=5 unde-persona
	EOF
	httpd_serve sensors "$TMP/routes" SHARD_0_DB_URL="$UNDE_T_S0" UNDE_COUNTERS_DIR="$TMP"
	port=$SENSORS_PORT
	export MOOD_AGENT_URL=http://127.0.0.1:$port PERSONA_AGENT_URL=http://127.0.0.1:$port
	export CONTEXT_AGENT_URL=$FAKE_ECHO_URL/reply CONTEXT_PACK_TIMEOUT=3
	fake_fail echo '{"mode":"hang","delay_ms":10000,"count":-1}'
	say "Ура, отличное настроение!"
	run cat "$TMP/out"
	assert_jq '.sensors.mood == "agent" and .sensors.persona == "agent" and .sensors.context == "default"'
	assert_jq '.sensors.defaults_why.context == "sibling_timeout"'
	assert_jq '.context_pack.blocks.D | test("позитивное")'
	assert_jq '.voice_params.preset != "neutral_confident" or .avatar_state.expression != "neutral"'
	assert_jq '.provider == "local"'
	# a sibling that refuses the connection: the default, counted
	export MOOD_AGENT_URL=http://127.0.0.1:1
	say "И снова привет"
	output=$(<"$TMP/out")
	assert_jq '.sensors.mood == "default" and .sensors.defaults_why.mood == "sibling_unavailable"'
	httpd_stop sensors
}

@test "erased and forgotten messages never reach a ContextPack" {
	DAYS=40 seed "Мой секретный пароль от сейфа — фламинго"
	DAYS=39 seed "Про фламинго я рассказывала только тебе"
	DAYS=38 seed "Фламинго — мой любимый цвет для сумки"
	embed_all
	conv=$(sql0 "select id from conversations where user_id = '$U'")
	m1=$(sql0 "select id from messages where content like '%сейфа%' and conversation_id = '$conv'")
	m2=$(sql0 "select id from messages where content like '%только тебе%' and conversation_id = '$conv'")
	unde-shard erase <<<'{"conversation_id":"'$conv'","message_id":"'$m1'"}' >/dev/null 2>&1
	unde-shard forget <<<'{"conversation_id":"'$conv'","message_id":"'$m2'"}' >/dev/null 2>&1
	say "Расскажи про фламинго"
	run jq -r .context_pack.text "$TMP/out"
	refute_output --partial 'сейфа'
	refute_output --partial 'только тебе'
	refute_output --partial '[deleted]'
	assert_output --partial 'любимый цвет для сумки'
}

@test "bad input: a record without message or with a bad user_id fails alone, the stream goes on" {
	{
		jq -nc '{user_id: "not-a-uuid", message: "x"}'
		jq -nc --arg u "$U" '{user_id: $u}'
		jq -nc --arg u "$U" '{user_id: $u, message: "hi", input_type: "fax"}'
		turn "Привет"
	} | unde-llm >"$TMP/out" 2>"$TMP/err" || rc=$?
	assert_equal "${rc:-0}" 65
	run cat "$TMP/out"
	assert_json_line_count 1
	run grep -c '"level":"error"' "$TMP/err"
	assert_output 3
}

@test "POST /chat through unde-httpd with etc/httpd/llm.routes, and unde-llm metrics counts the turns" {
	httpd_serve chat "$UNDE_TOP_SRCDIR/etc/httpd/llm.routes" SHARD_0_DB_URL="$UNDE_T_S0" \
		PRODUCTION_DB_URL="$UNDE_T_PROD" UNDE_COUNTERS_DIR="$TMP" MASTER_ENCRYPTION_KEY="$MASTER_ENCRYPTION_KEY"
	port=$CHAT_PORT
	run curl -sS --max-time 30 --data-binary "$(turn 'Привет, я Алия')" "http://127.0.0.1:$port/chat"
	assert_jq '.provider == "local" and (.text | length) > 0 and (.assistant_message_id | length) == 36'
	run curl -sS --max-time 30 --data-binary "$(turn 'А я снова тут')" "http://127.0.0.1:$port/chat"
	assert_jq '.provider == "local" and (.context_pack | not)'
	run curl -sS --max-time 30 -o /dev/null -w '%{http_code}' --data-binary '{"user_id":"nope","message":"x"}' "http://127.0.0.1:$port/chat"
	assert_output 400
	httpd_stop chat
	run unde-llm metrics
	assert_success
	assert_output --partial 'llm_orchestrator_answers_total{provider="local"} 2'
	assert_output --partial 'llm_orchestrator_errors 0'
	assert_output --partial 'llm_orchestrator_context_pack_time_seconds_count'
	assert_output --partial 'hybrid_search_latency_seconds_count'
	assert_output --partial 'user_knowledge_decrypt_latency_seconds_count'
	assert_output --partial 'llm_orchestrator_queue_size 0'
}

# queue_size — llm_orchestrator_queue_size as `unde-llm metrics` says it.
queue_size() { unde-llm metrics | awk '$1 == "llm_orchestrator_queue_size" { print $2 }'; }

@test "llm_orchestrator_queue_size counts the turns in flight and those waiting for the user's turn lock, and forgets a killed one at once" {
	providers
	fake_fail deepseek '{"mode":"slow","delay_ms":20000,"count":1}'
	assert_equal "$(queue_size)" 0
	turn "Первый вопрос про пальто" | unde-llm >/dev/null 2>&1 &
	a=$!
	for _ in $(seq 1200); do
		[[ $(fake_requests deepseek | jq length) -ge 1 ]] && break
		sleep 0.025
	done
	assert_equal "$(queue_size)" 1
	# the same user's second turn waits for the first one's lock
	turn "Второй вопрос про шарф" | unde-llm >/dev/null 2>&1 &
	b=$!
	for _ in $(seq 1200); do
		[[ $(psql -XAt "$UNDE_T_PROD" -c "select count(*) from pg_locks where locktype = 'advisory' and not granted") -ge 1 ]] && break
		sleep 0.025
	done
	assert_equal "$(queue_size)" 2
	kill -9 "$b"
	wait "$b" || true
	assert_equal "$(queue_size)" 1
	kill -9 "$a"
	wait "$a" || true
	assert_equal "$(queue_size)" 0
}

@test "after the line: the reaction to the previous answer goes to the persona as feedback, then its exchange is flushed" {
	cat >"$TMP/routes" <<-EOF
	POST /persona timeout=5 unde-persona
	POST /persona/feedback timeout=5 unde-persona feedback
	POST /persona/flush timeout=10 unde-persona flush
	EOF
	httpd_serve persona "$TMP/routes" SHARD_0_DB_URL="$UNDE_T_S0" UNDE_COUNTERS_DIR="$TMP"
	export PERSONA_AGENT_URL=http://127.0.0.1:$PERSONA_PORT
	# the persona's first call starts its process (slow under sanitizers):
	# this test is about feedback, not the frames' budget
	export CONTEXT_PACK_TIMEOUT=30
	say "Расскажи всё про льняные рубашки"
	first=$(jq -r .exchange_id "$TMP/out")
	output=$(<"$TMP/out")
	assert_jq '(.feedback_signals // []) == [] and .sensors.persona == "agent"'
	say "Слишком длинно, покороче пожалуйста"
	output=$(<"$TMP/out")
	assert_jq '.feedback_signals == ["brevity_requested"]'
	run grep -c 'persona feedback sent' "$TMP/err"
	assert_output 1
	run sql0 "select (profile->>'verbosity')::float < 0.5 from persona_profiles where user_id = '$U'"
	assert_output t
	run sql0 "select count(*) from persona_signal_ids where user_id = '$U'"
	assert_output 1
	run jq -c 'select(.msg == "persona feedback sent") | .exchange_id' "$TMP/err"
	assert_output "\"$first\""
	httpd_stop persona
	# a persona that is down never fails the turn
	export PERSONA_AGENT_URL=http://127.0.0.1:1
	say "Ещё короче, пожалуйста"
	output=$(<"$TMP/out")
	assert_jq '.feedback_signals == ["brevity_requested"] and .sensors.persona == "default"'
	run grep -c 'persona feedback failed' "$TMP/err"
	assert_output 1
}

@test "two concurrent turns of one user keep their order: the second waits, then sees the first" {
	providers
	fake_config deepseek '{"reply_text":"Ответ на первый."}'
	fake_fail deepseek '{"mode":"slow","delay_ms":1500,"count":1}'
	turn "Первый вопрос про пальто" | unde-llm --show-context-pack >"$TMP/a" 2>"$TMP/a.err" &
	a=$!
	# the second starts once the first is at its LLM call, holding the turn
	for _ in $(seq 400); do
		[[ $(fake_requests deepseek | jq length) -ge 1 ]] && break
		sleep 0.025
	done
	turn "Второй вопрос про шарф" | unde-llm --show-context-pack >"$TMP/b" 2>"$TMP/b.err"
	wait "$a"
	run sql0 "select m.role || ':' || left(m.content, 6) from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$U' order by m.created_at"
	assert_output "$(printf '%s\n' 'user:Первый' 'assistant:Ответ ' 'user:Второй' 'assistant:Ответ ')"
	output=$(<"$TMP/b")
	assert_jq '.context_pack.blocks.C | any(test("Первый вопрос")) and any(test("Ответ на первый"))'
}

@test "a photo turn is a recognition intent and the photo is saved with the user's message" {
	say "Что это за куртка?" '{"photo_url":"https://cdn.example/u/photo1.jpg","input_type":"voice"}'
	output=$(<"$TMP/out")
	assert_jq '.intent == "recognition" and (.text | test("Фото получила"))'
	um=$(jq -r .user_message_id "$TMP/out")
	run sql0 "select input_type, media_urls::text from messages where id = '$um'"
	assert_output 'voice|["https://cdn.example/u/photo1.jpg"]'
}

@test "a photo turn goes to unde-recognize behind unde-httpd: its matches are in the ContextPack and the answer; recognition down never fails the turn" {
	moto_start
	local llm_prod=$PRODUCTION_DB_URL
	recog_catalog 4
	local recog_prod=$PRODUCTION_DB_URL
	export PRODUCTION_DB_URL=$llm_prod
	recog_street "$TMP/s3.jpg" 3
	photo=$(recog_put "$TMP/s3.jpg" "$U/photos/p3/original.jpg")
	httpd_serve recog "$UNDE_TOP_SRCDIR/etc/httpd/recognize.routes" PRODUCTION_DB_URL="$recog_prod" \
		S3_ENDPOINT="$S3_ENDPOINT" S3_BUCKET="$S3_BUCKET" S3_USER_MEDIA_BUCKET="$S3_USER_MEDIA_BUCKET" \
		S3_ACCESS_KEY="$S3_ACCESS_KEY" S3_SECRET_KEY="$S3_SECRET_KEY" S3_REGION="${S3_REGION:-us-east-1}" \
		UNDE_COUNTERS_DIR="$TMP"
	export RECOGNITION_URL=http://127.0.0.1:$RECOG_PORT
	say "Что это за куртка?" "$(jq -nc --arg p "$photo" '{photo_url: $p}')"
	output=$(<"$TMP/out")
	assert_jq '.intent == "recognition" and .recognition.status == "done"' || { cat "$TMP/err" >&2; cat "$(_httpd_dir)/recog.log" >&2; false; }
	assert_jq '.recognition.items[0].match_type == "exact" and .recognition.items[0].matches[0].sku_id == "Z3"'
	assert_jq '.context_pack.blocks.E | any(test("^Фото: .*exact.*SKU Z3"))'
	assert_jq '.text | test("На фото нашла: .*SKU Z3, точное совпадение")'
	# the request is recognition's own row in its production (written
	# just after its done line)
	wait_until 10 one_recognition_row "$recog_prod"
	httpd_stop recog
	export RECOGNITION_URL=http://127.0.0.1:1
	say "А это?" "$(jq -nc --arg p "$photo" '{photo_url: $p}')"
	output=$(<"$TMP/out")
	assert_jq '.recognition.status == "unavailable" and (.text | test("распознать вещи на нём сейчас не получилось"))'
	um=$(jq -r .user_message_id "$TMP/out")
	run sql0 "select media_urls->>0 from messages where id = '$um'"
	assert_output "$photo"
}

# deltas_match — the delta lines after the last discard concatenate to the
# final line's text, which is the last line and says "stage":"done".
deltas_match() {
	jq -se '([.[] | select(.stage == "discard") | .seq] | max // -1) as $d
		| .[-1].stage == "done"
		and ([.[] | select(.stage == "delta" and .seq > $d) | .text] | join("")) == .[-1].text' "$1"
}

@test "--stream: the primary's answer leaves as delta lines by sentence that concatenate to the final line's text, which is saved; without it one line" {
	providers
	fake_config deepseek '{"reply_text":"Первое предложение. Второе предложение! Третье."}'
	turn "Расскажи что-нибудь" | unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | select(.stage == "delta") | .text]' "$TMP/out"
	assert_output '["Первое предложение. ","Второе предложение! ","Третье."]'
	run tail -n1 "$TMP/out"
	assert_jq '.provider == "deepseek" and .model_used == "deepseek-chat" and .tokens == {"in":50,"out":40}'
	run fake_requests deepseek
	assert_jq '.[0].json.stream == true and .[0].json.stream_options.include_usage == true'
	am=$(tail -n1 "$TMP/out" | jq -r .assistant_message_id)
	run sql0 "select content from messages where id = '$am'"
	assert_output 'Первое предложение. Второе предложение! Третье.'
	# "stream":true in the record does the same; without either, one line and no stage
	turn "Ещё раз" '{"stream":true}' | unde-llm >"$TMP/out2" 2>/dev/null
	deltas_match "$TMP/out2"
	turn "И ещё" | unde-llm >"$TMP/out3" 2>/dev/null
	run jq -s 'length == 1 and (.[0] | has("stage") | not) and .[0].provider == "deepseek"' "$TMP/out3"
	assert_output true
}

@test "--stream: the first delta line is out before the provider sends its last chunk" {
	providers
	fake_config deepseek "{\"reply_text\":\"Первое предложение. Второе предложение.\",\"stream_hold_file\":\"$TMP/release\"}"
	turn "Привет" | LLM_TIMEOUT=90 unde-llm --stream >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	# the fake holds its last piece until $TMP/release exists: a delta
	# before that can only come from a stream read as it arrives
	for _ in $(seq 600); do
		grep -q '"stage":"delta"' "$TMP/out" 2>/dev/null && break
		sleep 0.1
	done
	run jq -sc '[.[] | .stage]' "$TMP/out"
	assert_output '["delta"]'
	touch "$TMP/release"
	wait "$pid"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | .stage]' "$TMP/out"
	assert_output '["delta","delta","done"]'
}

@test "--stream: a provider cut or spoiled mid-stream is followed by a discard line and the next one answers whole; one failing before its first delta leaves no trace" {
	providers
	fake_config deepseek '{"reply_text":"Раз. Два. Три. Четыре.","stream_cut_after":3}'
	fake_config gemini '{"reply_text":"Gemini отвечает. Целиком."}'
	turn "Что надеть?" | unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | [.stage, .provider]]' "$TMP/out"
	assert_output '[["delta","deepseek"],["delta","deepseek"],["discard","deepseek"],["delta","gemini"],["delta","gemini"],["done","gemini"]]'
	run tail -n1 "$TMP/out"
	assert_jq '.text == "Gemini отвечает. Целиком." and .model_used == "gemini-2.0-flash"'
	assert_jq '[.providers_skipped[] | [.provider, .reason, .deltas_discarded]] == [["deepseek","unreachable",2]]'
	am=$(tail -n1 "$TMP/out" | jq -r .assistant_message_id)
	run sql0 "select content from messages where id = '$am'"
	assert_output 'Gemini отвечает. Целиком.'
	run fake_requests gemini
	assert_jq '.[0].path | endswith(":streamGenerateContent")'
	assert_jq '.[0].query == "alt=sse"'
	# deepseek 500 and gemini garbage before any sentence: no discard; claude streams
	fake_reset deepseek; fake_reset gemini
	fake_fail deepseek '{"mode":"500","count":-1}'
	fake_config gemini '{"reply_text":"Не будет сказано.","stream_garbage_after":0}'
	fake_config claude '{"reply_text":"Claude потоком. Готово."}'
	turn "А так?" | unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | [.stage, .provider]]' "$TMP/out"
	assert_output '[["delta","claude"],["delta","claude"],["done","claude"]]'
	run tail -n1 "$TMP/out"
	assert_jq '[.providers_skipped[] | [.provider, .reason]] == [["deepseek","5xx"],["gemini","malformed"]]'
	assert_jq '.tokens == {"in":120,"out":30}'
	# claude's garbage after a sentence: discarded, qwen (DashScope) finishes
	fake_config claude '{"reply_text":"Claude потоком. Готово. Ещё.","stream_garbage_after":3}'
	turn "И ещё?" | unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | [.stage, .provider]]' "$TMP/out"
	assert_output '[["delta","claude"],["discard","claude"],["delta","qwen"],["done","qwen"]]'
	run tail -n1 "$TMP/out"
	assert_jq '.text == "Привет от Qwen." and .provider == "qwen"'
}

@test "--stream: every provider failing mid-stream ends with the local responder's text as deltas, after one discard per provider that spoke" {
	providers
	for f in deepseek gemini claude qwen; do fake_config "$f" '{"reply_text":"Начало ответа. Потом обрыв.","stream_cut_after":3}'; done
	turn "Где купить льняную рубашку?" | unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | select(.stage == "discard") | .provider]' "$TMP/out"
	assert_output '["deepseek","gemini","claude","qwen"]'
	run tail -n1 "$TMP/out"
	assert_jq '.provider == "local" and (.text | length) > 0'
}

@test "POST /chat/stream through unde-httpd sends the delta lines as they come, then the answer; POST /chat still answers one line" {
	providers
	fake_config deepseek '{"reply_text":"Через httpd. Потоком."}'
	# every unde-llm the routes start, counted by a wrapper first in PATH
	mkdir -p "$TMP/bin"
	printf '#!/bin/sh\necho "$*" >>"%s"\nexec "%s" "$@"\n' "$TMP/starts" "$(command -v unde-llm)" >"$TMP/bin/unde-llm"
	chmod +x "$TMP/bin/unde-llm"
	PATH="$TMP/bin:$PATH" httpd_serve chat "$UNDE_TOP_SRCDIR/etc/httpd/llm.routes" SHARD_0_DB_URL="$UNDE_T_S0" \
		PRODUCTION_DB_URL="$UNDE_T_PROD" UNDE_COUNTERS_DIR="$TMP" MASTER_ENCRYPTION_KEY="$MASTER_ENCRYPTION_KEY" \
		DEEPSEEK_API_URL="$DEEPSEEK_API_URL" DEEPSEEK_API_KEY=test-key
	port=$CHAT_PORT
	curl -sS -N --max-time 30 --data-binary "$(turn 'Привет')" "http://127.0.0.1:$port/chat/stream" >"$TMP/out"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | .stage]' "$TMP/out"
	assert_output '["delta","delta","done"]'
	run curl -sS --max-time 30 --data-binary "$(turn 'Ещё' '{"stream":true}')" "http://127.0.0.1:$port/chat"
	assert_jq '.stage == "done" and .text == "Через httpd. Потоком." and .provider == "deepseek"'
	# two streamed turns on one connection: one kept unde-llm --stream
	# answers both, each stream whole and ended by its own done line
	curl -sS -N --max-time 30 -w '{"connects":%{num_connects}}\n' --data-binary "$(turn 'Раз')" \
		"http://127.0.0.1:$port/chat/stream" --next -sS -N --max-time 30 \
		-w '{"connects":%{num_connects}}\n' --data-binary "$(turn 'Два')" \
		"http://127.0.0.1:$port/chat/stream" >"$TMP/two"
	run jq -sc '[.[] | .stage // .connects]' "$TMP/two"
	assert_output '["delta","delta","done",1,"delta","delta","done",0]'
	run jq -sc '[.[] | select(.stage == "done") | .text]' "$TMP/two"
	assert_output '["Через httpd. Потоком.","Через httpd. Потоком."]'
	# one unde-llm --stream per connection (the first curl's, the pair's)
	# and one plain unde-llm, for /chat
	run sort "$TMP/starts"
	assert_output $'\n--stream\n--stream'
	httpd_stop chat
}

@test "--stream: a provider slow to its first byte times out before any delta, and the next one streams with no discard" {
	providers
	fake_fail deepseek '{"mode":"slow","delay_ms":5000,"count":-1}'
	fake_config gemini '{"reply_text":"Быстрый ответ. Без потерь."}'
	turn "Есть кто?" | LLM_TIMEOUT=1 unde-llm --stream >"$TMP/out" 2>"$TMP/err"
	deltas_match "$TMP/out"
	run jq -sc '[.[] | [.stage, .provider]]' "$TMP/out"
	assert_output '[["delta","gemini"],["delta","gemini"],["done","gemini"]]'
	run tail -n1 "$TMP/out"
	assert_jq '[.providers_skipped[] | [.provider, .reason]] == [["deepseek","timeout"]]'
}

# hist_count NAME — the _count of histogram NAME as `unde-llm metrics` says
# it ("" when never observed).
hist_count() { unde-llm metrics | awk -v n="$1_count" '$1 == n { print $2 }'; }

@test "metrics: a streamed turn counts in llm_orchestrator_response_time_seconds like a plain one, and in llm_orchestrator_stream_first_delta_seconds, which a plain turn leaves alone" {
	providers
	fake_config deepseek '{"reply_text":"Раз. Два. Три."}'
	turn "Привет" | unde-llm >"$TMP/out" 2>/dev/null
	run jq -r .provider "$TMP/out"
	assert_output deepseek
	assert_equal "$(hist_count llm_orchestrator_response_time_seconds)" 1
	assert_equal "$(hist_count llm_orchestrator_stream_first_delta_seconds)" ""
	turn "Ещё" | unde-llm --stream >"$TMP/out" 2>/dev/null
	turn "И ещё" '{"stream":true}' | unde-llm >>"$TMP/out" 2>/dev/null
	run jq -s '[.[] | select(.stage == "done")] | length' "$TMP/out"
	assert_output 2
	assert_equal "$(hist_count llm_orchestrator_response_time_seconds)" 3
	assert_equal "$(hist_count llm_orchestrator_stream_first_delta_seconds)" 2
	# a streamed turn answered by the local responder streams too
	turn "А теперь без ключей" | env -u DEEPSEEK_API_KEY -u GEMINI_API_KEY -u CLAUDE_API_KEY -u QWEN_API_KEY \
		unde-llm --stream >"$TMP/out" 2>/dev/null
	run tail -n1 "$TMP/out"
	assert_jq '.provider == "local" and .stage == "done"'
	assert_equal "$(hist_count llm_orchestrator_stream_first_delta_seconds)" 3
	assert_equal "$(hist_count llm_orchestrator_response_time_seconds)" 4
}

@test "the answer's density record is written after its line: a shard refusing it leaves the turn answered and saved, counted in llm_answer_records_failed" {
	# refused for this test's user only, so no other test meets the trigger
	sql0 "create function refuse_meta() returns trigger language plpgsql as \$\$ begin
	        if new.user_id = '$U' then raise exception 'no meta today'; end if; return new; end \$\$;
	      create trigger refuse_meta before insert on llm_answer_meta for each row execute function refuse_meta()" >/dev/null
	turn 'Привет, как дела?' | unde-llm >"$TMP/out" 2>"$TMP/err"
	sql0 "drop trigger refuse_meta on llm_answer_meta; drop function refuse_meta()" >/dev/null
	run cat "$TMP/out"
	assert_jq '(.text | length) > 0 and (.assistant_message_id | length) == 36'
	am=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select role from messages where id = '$am'"
	assert_output assistant
	run sql0 "select count(*) from llm_answer_meta where message_id = '$am'"
	assert_output 0
	run grep -c "the answer's density record is missing" "$TMP/err"
	assert_output 1
	run unde-llm metrics
	assert_output --partial 'llm_answer_records_failed 1'
	# the user's next turn is unaffected and records its own
	turn 'А сейчас?' | unde-llm >"$TMP/out" 2>/dev/null
	am=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select count(*) from llm_answer_meta where message_id = '$am'"
	assert_output 1
}

@test "connections cut between turns (a restarted shard and production): the turn that meets them fails 69 and drops them all, the next ones are answered on new connections, the search worker's included" {
	mkfifo "$TMP/in"
	unde-llm <"$TMP/in" >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	exec 7>"$TMP/in" # (bats writes its report on 3)
	turn "Первый вопрос про пальто" >&7
	for _ in $(seq 1200); do
		[[ $(wc -l <"$TMP/out") -ge 1 ]] && break
		sleep 0.025
	done
	run jq -r .message "$TMP/out"
	assert_output "Первый вопрос про пальто"
	for db in "$UNDE_T_S0" "$UNDE_T_PROD"; do
		psql -XAt "$db" -c "select count(pg_terminate_backend(pid)) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid()" >/dev/null
	done
	for n in 2 3 4 5; do turn "Вопрос номер $n про шарф" >&7; done
	exec 7>&-
	wait "$pid" || true
	# one turn failed (69, the database away); the three after it are answered
	run jq -sc '[.[] | select(.level == "error" and .record) | [.record.message, .error.code]]' "$TMP/err"
	assert_output '[["Вопрос номер 2 про шарф","shard_unavailable"]]'
	run jq -sc '[.[] | select(.assistant_message_id | length == 36) | .message]' "$TMP/out"
	assert_output '["Первый вопрос про пальто","Вопрос номер 3 про шарф","Вопрос номер 4 про шарф","Вопрос номер 5 про шарф"]'
}
