#!/usr/bin/env bats
# unde-llm's two upstreams besides the LLM (t/unde-llm.bats has the rest of
# the turn): the stylist intent through Intelistyle (fake, our documented
# contract), whose outfits are checked against production's stock, and the
# query embedding through Cohere (fake) with the local embedder as its
# fallback, searching only messages embedded by the query's own model.

load lib/common
load lib/pg
load lib/fake

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	for f in intelistyle cohere deepseek; do fake_start "$f" "$f.py"; done
	pg_start
	export UNDE_T_PROD UNDE_T_S0
	UNDE_T_PROD=$(pg_migrated_db prod production)
	UNDE_T_S0=$(pg_shard_db shard0 0)
	psql -XAtq "$UNDE_T_PROD" <<-SQL
	insert into malls (id, name, timezone, latitude, longitude) values ('dubai-hills', 'Dubai Hills Mall', 'Asia/Dubai', 25.1, 55.2);
	insert into stores (id, mall_id, name, brand, floor, external_store_id) values ('zara-dh', 'dubai-hills', 'Zara', 'ZARA', 1, 6643);
	insert into products (source, sku, brand, name, price, currency, category, available, availability) values
	  ('apify_zara', 'LN-100', 'ZARA', 'Рубашка льняная оверсайз', 129.00, 'AED', 'рубашки', true, '{"6643":["M"]}'),
	  ('apify_zara', 'LN-200', 'ZARA', 'Рубашка льняная укороченная', 99.00, 'AED', 'рубашки', false, '{}'),
	  ('apify_zara', 'TR-300', 'ZARA', 'Брюки прямые бежевые', 159.00, 'AED', 'брюки', true, '{"6643":["38"]}');
	SQL
}

teardown_file() {
	fake_stop_all || true
	pg_stop
	unde_teardown_file
}

setup() {
	export UNDE_ENV_FILE=/dev/null
	export PRODUCTION_DB_URL=$UNDE_T_PROD SHARD_0_DB_URL=$UNDE_T_S0
	TMP=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$TMP HTTP_BACKOFF_BASE_MS=20
	export INTELISTYLE_API_URL=$FAKE_INTELISTYLE_URL/v3 INTELISTYLE_API_KEY=test-key
	export COHERE_API_URL=$FAKE_COHERE_URL EMBEDDING_MODEL=embed-multilingual-v3
	unset COHERE_API_KEY EMBEDDING_PROVIDER
	U=$(uuid)
	for f in intelistyle cohere deepseek; do fake_reset "$f"; done
}

teardown() {
	unde_teardown
}

sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# say MESSAGE [EXTRA-JSON-MEMBERS] — one turn of user $U, output in $TMP/out
# (and in $output, for assert_jq); the turn must succeed.
say() {
	jq -nc --arg u "$U" --arg m "$1" --argjson x "${2:-{\}}" '{user_id: $u, message: $m, request_id: "t-\(now)"} + $x' |
		unde-llm --show-context-pack >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err" >&2; return 1; }
	output=$(<"$TMP/out")
}

# metric NAME — its value as `unde-llm metrics` prints it (0 when absent).
metric() { unde-llm metrics | awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'; }

# An outfit of two products in stock, one SKU production never had, one out
# of stock; a second outfit of only an unknown SKU.
OUTFITS='[{"id":"o1","items":[{"sku":"LN-100","role":"top"},{"sku":"TR-300","role":"bottom"},
  {"sku":"GHOST-1","role":"shoes"},{"sku":"LN-200","role":"top"}],"reason":"Лён к льну: светлый верх, прямой низ"},
  {"id":"o2","items":[{"sku":"GHOST-2","role":"main"}],"reason":"Совсем другой образ"}]'

@test "a stylist turn asks Intelistyle with the message, its occasion and the catalog items, and the answer names its outfit" {
	say "Что надеть с льняной рубашкой на свадьбу?" '{"mall_id":"dubai-hills"}'
	assert_jq '.intent == "stylist" and .provider == "local" and .stylist.status == "done"'
	run fake_requests intelistyle /v3/outfits
	assert_jq 'length == 1 and .[0].headers.authorization == "Bearer test-key"'
	assert_jq '.[0].json | .query == "Что надеть с льняной рубашкой на свадьбу?" and .occasion == "wedding" and .gender == null and .max_outfits == 3'
	assert_jq '[.[0].json.items[].sku] == ["LN-100"] and .[0].json.items[0].brand == "ZARA"'
	output=$(<"$TMP/out")
	assert_jq '[.stylist.outfits[0].items[].sku] == ["LN-100"] and .stylist.outfits[0].reason == "Balanced colours and one silhouette, right for wedding"'
	assert_jq '.text | test("Собрала образ из того, что есть в наличии: ZARA Рубашка льняная оверсайз, 129.00 AED, Zara \\(SKU LN-100\\)")'
	assert_jq '.context_pack.blocks.E | any(test("^Стилист, образ 1: ZARA Рубашка льняная оверсайз.*Почему: Balanced colours"))'
	assert_jq '.artifact.type == "look" and [.artifact.items[].sku] == ["LN-100"]'
	# a message without an occasion says so
	say "Подбери образ с рубашкой"
	run fake_requests intelistyle /v3/outfits
	assert_jq '.[1].json.occasion == null'
}

@test "the stylist's SKUs are checked against production: one it has not, or not in stock, is never named, and is counted" {
	fake_config intelistyle "{\"outfits\": $OUTFITS}"
	say "Что надеть с льняной рубашкой на свадьбу?" '{"mall_id":"dubai-hills"}'
	assert_jq '.stylist.status == "done" and (.stylist.outfits | length) == 1'
	assert_jq '[.stylist.outfits[0].items[].sku] == ["LN-100", "TR-300"] and .stylist.outfits[0].items[1].store == "Zara"'
	assert_jq '.stylist.unknown_skus == ["GHOST-1", "LN-200", "GHOST-2"]'
	assert_jq '.text | test("ZARA Брюки прямые бежевые, 159.00 AED, Zara \\(SKU TR-300\\)") and test("Лён к льну")'
	assert_jq '[.text, .context_pack.text] | all(test("GHOST|LN-200|укороченная|другой образ") | not)'
	assert_jq '.artifact.type == "look" and [.artifact.items[].sku] == ["LN-100", "TR-300"]'
	am=$(jq -r .assistant_message_id "$TMP/out")
	run sql0 "select response_description from messages where id = '$am'"
	assert_output --partial 'SKU TR-300'
	refute_output --partial 'GHOST'
	run metric intelistyle_unknown_skus
	assert_output 3
}

@test "the LLM gets the outfits in the ContextPack, only with products production has" {
	export DEEPSEEK_API_URL=$FAKE_DEEPSEEK_URL DEEPSEEK_API_KEY=test-key
	fake_config intelistyle "{\"outfits\": $OUTFITS}"
	fake_config deepseek '{"reply_text":"Бери брюки прямые бежевые к рубашке."}'
	say "Что надеть с льняной рубашкой на свадьбу?"
	assert_jq '.provider == "deepseek" and .stylist.status == "done"'
	run fake_requests deepseek
	assert_jq '.[0].json.messages[0].content | test("Стилист, образ 1: ZARA Рубашка льняная оверсайз.* \\+ ZARA Брюки прямые бежевые, 159.00 AED, Zara \\(SKU TR-300\\)")'
	assert_jq '.[0].json.messages[0].content | test("GHOST|LN-200") | not'
}

@test "Intelistyle failing (429, 500, a hang past INTELISTYLE_TIMEOUT, garbage) never fails the turn: it answers without outfits and counts intelistyle_errors" {
	export INTELISTYLE_TIMEOUT=1
	for fault in 429 500 hang malformed badsku; do
		fake_reset intelistyle
		case $fault in
		429) fake_fail intelistyle '{"mode":"429","count":-1,"retry_after":"1"}' ;;
		500) fake_fail intelistyle '{"mode":"500","count":-1}' ;;
		hang) fake_fail intelistyle '{"mode":"hang","count":-1,"delay_ms":10000}' ;;
		malformed) fake_fail intelistyle '{"mode":"malformed","count":-1}' ;;
		badsku) fake_config intelistyle '{"outfits":[{"items":[{"sku":5}]}]}' ;;
		esac
		run --separate-stderr bash -c 'jq -nc --arg u "$1" "{user_id: \$u, message: \"Что надеть с льняной рубашкой?\"}" | unde-llm --show-context-pack' _ "$U"
		assert_success
		assert_jq '.intent == "stylist" and .stylist.status == "unavailable" and (.stylist.outfits | not)'
		case $fault in
		429) assert_jq '.stylist.reason == "429"' ;;
		500) assert_jq '.stylist.reason == "5xx"' ;;
		hang) assert_jq '.stylist.reason == "timeout"' ;;
		*) assert_jq '.stylist.reason == "malformed"' ;;
		esac
		# the catalog answer still stands, and nothing of the stylist's
		assert_jq '(.text | test("Рубашка льняная оверсайз")) and (.text | test("Собрала образ") | not)'
		assert_jq '.context_pack.blocks.E | all(test("^Стилист") | not)'
		[[ $stderr == *'"stylist failed; the turn goes on without outfits"'* ]] || fail "no warning for $fault: $stderr"
	done
	run metric intelistyle_errors
	assert_output 5
	run metric llm_orchestrator_errors
	assert_output 0
}

@test "with no INTELISTYLE_API_KEY a stylist turn answers from the catalog, asks nothing and counts no error" {
	unset INTELISTYLE_API_KEY
	say "Что надеть с льняной рубашкой?"
	assert_jq '.intent == "stylist" and .stylist == {"status":"unavailable","reason":"no_key","error":"INTELISTYLE_API_KEY is not set"}'
	assert_jq '.text | test("Рубашка льняная оверсайз") and test("Для какого случая подбираем образ")'
	run fake_requests intelistyle
	assert_output '[]'
	run metric intelistyle_errors
	assert_output 0
	run metric 'intelistyle_requests_total{result="no_key"}'
	assert_output 1
}

@test "a chat turn never calls the stylist" {
	say "Привет, как твои дела?"
	assert_jq '.intent == "chat" and (has("stylist") | not)'
	run fake_requests intelistyle
	assert_output '[]'
}

# put CONTENT — a user message of $U saved 30 days ago; prints its id.
put() {
	local id
	id=$(uuid)
	jq -nc --arg u "$U" --arg id "$id" --arg c "$1" \
		'{user_id: $u, messages: [{id: $id, role: "user", content: $c, created_at: (now - 30 * 86400 | todate)}]}' |
		unde-shard save >/dev/null 2>&1 || return 1
	echo "$id"
}
# filler — ten chats saved a day ago, so older messages leave the recent window
filler() {
	for i in $(seq 10); do
		jq -nc --arg u "$U" --arg id "$(uuid)" --arg c "Просто болтаем про разное номер $i" \
			'{user_id: $u, messages: [{id: $id, role: "user", content: $c, created_at: (now - 86400 | todate)}]}' |
			unde-shard save >/dev/null 2>&1 || return 1
	done
}
# vec TEXT — TEXT's query embedding as unde-embed gives it (Cohere when a
# key is set, else the local embedder), a JSON array.
vec() { jq -nc --arg t "$1" '{text: $t}' | unde-embed 2>/dev/null | jq -c .embedding; }

@test "with Cohere the query goes out as search_query by EMBEDDING_MODEL, and a Cohere-embedded history is found by its vector" {
	export COHERE_API_KEY=test-key
	silk=$(put "Обожаю шелковые платья миди")
	filler
	unde-embed --pending >/dev/null 2>&1
	run sql0 "select distinct embedding_model from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$U'"
	assert_output embed-multilingual-v3
	fake_reset cohere
	say "Обожаю шелковые платья миди"
	assert_jq '.query_embedding.provider == "cohere" and .query_embedding.model == "embed-multilingual-v3"'
	assert_jq --arg id "$silk" '.query_embedding.vector_hits | any(.id == $id and .vec_score > 0.99)'
	assert_jq --arg id "$silk" '.context_pack.episode_ids | index($id) != null'
	run fake_requests cohere /v2/embed
	assert_jq 'length == 1 and .[0].headers.authorization == "Bearer test-key"'
	assert_jq '.[0].json | .input_type == "search_query" and .texts == ["Обожаю шелковые платья миди"] and .model == "embed-multilingual-v3" and .embedding_types == ["float"]'
}

@test "Cohere failing falls back to the local embedder, and a query never ranks messages embedded by another model" {
	q="Куда сходить вечером у моря"
	export COHERE_API_KEY=test-key
	# both messages' vectors are exactly the local embedding of q, one
	# labelled Cohere's: were models mixed, it would score 1 too
	cv=$(put "Обожаю шелковые платья миди")
	lv=$(put "Тёплый ветер и солёный воздух")
	filler
	unde-embed --pending >/dev/null 2>&1
	local_q=$(unset COHERE_API_KEY; vec "$q")
	cohere_q=$(vec "$q")
	[[ $local_q == \[* && $cohere_q == \[* && $local_q != "$cohere_q" ]] || fail "no query vectors"
	sql0 "update messages set embedding = '$local_q'::vector where id = '$cv'" >/dev/null
	sql0 "update messages set embedding = '$local_q'::vector, embedding_model = 'local-ngram-v1' where id = '$lv'" >/dev/null
	fake_reset cohere
	fake_fail cohere '{"mode":"500","count":-1}'
	say "$q"
	assert_jq '.query_embedding.provider == "local" and .query_embedding.model == "local-ngram-v1"'
	assert_jq '.query_embedding.providers_skipped[0] | .provider == "cohere" and .reason == "5xx"'
	assert_jq --arg l "$lv" '[.query_embedding.vector_hits[] | .id] == [$l] and .query_embedding.vector_hits[0].vec_score > 0.99'
	assert_jq --arg c "$cv" '.context_pack.episode_ids | index($c) == null'
	run metric llm_query_embedding_fallbacks
	assert_output 1
	# Cohere back, both vectors now exactly Cohere's embedding of q: its
	# query meets the Cohere-labelled message, never the local one
	fake_reset cohere
	sql0 "update messages set embedding = '$cohere_q'::vector where id in ('$cv', '$lv')" >/dev/null
	say "$q"
	assert_jq '.query_embedding.provider == "cohere"'
	assert_jq --arg c "$cv" '[.query_embedding.vector_hits[] | .id] == [$c] and .query_embedding.vector_hits[0].vec_score > 0.99'
	assert_jq --arg l "$lv" '.context_pack.episode_ids | index($l) == null'
}

@test "EMBEDDING_PROVIDER=local embeds the query locally even with a Cohere key, and without a key Cohere is skipped, not counted as a fallback" {
	export COHERE_API_KEY=test-key EMBEDDING_PROVIDER=local
	say "Привет, как дела?"
	assert_jq '.query_embedding.provider == "local" and .query_embedding.model == "local-ngram-v1" and (.query_embedding.providers_skipped | not)'
	run fake_requests cohere
	assert_output '[]'
	unset COHERE_API_KEY EMBEDDING_PROVIDER
	say "Привет ещё раз"
	assert_jq '.query_embedding.provider == "local" and .query_embedding.providers_skipped[0].reason == "no_key"'
	run metric llm_query_embedding_fallbacks
	assert_output 0
}
