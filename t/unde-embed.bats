#!/usr/bin/env bats
# unde-embed: embeddings and memory snippets for the chat history (issue 13),
# against real PostgreSQL + pgvector and a fake Cohere in its wire format.

load lib/common
load lib/pg

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	pg_start
	export UNDE_T_S0
	UNDE_T_S0=$(pg_createdb embed_shard0)
	unde-shard init --shard 0 --url "$UNDE_T_S0" >/dev/null 2>&1
	fake_start cohere cohere.py
	fake_start gemini gemini.py
	fake_start deepseek deepseek.py
}

teardown_file() {
	pg_stop
	unde_teardown_file
}

setup() {
	unset PRODUCTION_DB_URL
	export SHARD_0_DB_URL=$UNDE_T_S0
	export COHERE_API_URL=$FAKE_COHERE_URL COHERE_API_KEY=test-key
	TMP=$(unde_tmpdir)
	export UNDE_COUNTERS_DIR=$TMP UNDE_METRICS_DIR=$TMP
	fake_reset cohere
	fake_reset gemini
	fake_reset deepseek
	unset SNIPPET_PROVIDERS SNIPPET_TIMEOUT GEMINI_API_KEY DEEPSEEK_API_KEY
	export GEMINI_API_URL=$FAKE_GEMINI_URL DEEPSEEK_API_URL=$FAKE_DEEPSEEK_URL
	psql -XAtq "$UNDE_T_S0" -c "delete from messages; delete from conversations"
	USER_ID=$(uuid)
}

teardown() { unde_teardown; }

sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# save N user messages (content "$2 i") for USER_ID; prints nothing
_save_many() {
	local n=$1 text=$2
	jq -nc --arg u "$USER_ID" --arg t "$text" --argjson n "$n" \
		'{user_id: $u, messages: [range($n) | {id: ("00000000-0000-4000-8000-" + ("000000000000" + tostring)[-12:]), role: "user", content: "\($t) номер \(.)"}]}' |
		unde-shard save >/dev/null
}

@test "--help, --version and a usage error" {
	run unde-embed --help
	assert_success
	[[ $output == *--pending* && $output == *--reembed* && $output == *local-ngram-v1* ]]
	run unde-embed --version
	assert_success
	run --separate-stderr unde-embed --reembed --pending
	assert_failure 64
}

@test "a query is embedded by Cohere as search_query, or by the local embedder without a key" {
	run --separate-stderr unde-embed <<<'{"text":"тёплое пальто"}'
	assert_success
	assert_jq '.provider == "cohere" and .embedding_model == "embed-multilingual-v3.0" and (.embedding | length) == 1024'
	fake_requests cohere /v2/embed | jq_e 'length == 1 and .[0].json.input_type == "search_query" and .[0].json.embedding_types == ["float"] and .[0].headers.authorization == "Bearer test-key"'
	run --separate-stderr env -u COHERE_API_KEY unde-embed <<<'{"text":"тёплое пальто"}'
	assert_success
	assert_jq '.provider == "local" and .embedding_model == "local-ngram-v1" and .providers_skipped[0].reason == "no_key"'
	# deterministic, unit length, and near for similar words, far for others
	a=$(env -u COHERE_API_KEY unde-embed <<<'{"text":"тёплое пальто"}' 2>/dev/null | jq -c .embedding)
	[[ $a == "$(jq -c .embedding <<<"$output")" ]]
	b=$(env -u COHERE_API_KEY unde-embed <<<'{"text":"тёплые пальто"}' 2>/dev/null | jq -c .embedding)
	c=$(env -u COHERE_API_KEY unde-embed <<<'{"text":"red linen shirt"}' 2>/dev/null | jq -c .embedding)
	jq -ne --argjson a "$a" --argjson b "$b" --argjson c "$c" \
		'def dot(x; y): [range(1024) as $i | x[$i] * y[$i]] | add;
		 (dot($a; $a) - 1 | fabs) < 1e-5 and dot($a; $b) > 0.4 and (dot($a; $c) | fabs) < 0.2'
}

@test "--pending embeds 200 messages in batches of at most 96 and makes them findable by search" {
	_save_many 200 "льняная рубашка белая"
	q='{"user_id":"'$USER_ID'","query_embedding":'"$(unde-embed <<<'{"text":"льняная рубашка белая номер 7"}' 2>/dev/null | jq -c .embedding)"',"query_model":"embed-multilingual-v3.0"}'
	run --separate-stderr unde-shard search <<<"$q"
	assert_jq '.episodes == []'
	fake_reset cohere
	run --separate-stderr unde-embed --pending
	assert_success
	assert_json_line_count 200
	assert_jq -s 'all(.enriched.provider == "cohere" and .enriched.embedding_model == "embed-multilingual-v3.0" and (.enriched.memory_snippet | length) > 0)'
	fake_requests cohere /v2/embed | jq_e '[.[].json.texts | length] == [96, 96, 8] and all(.json.input_type == "search_document")'
	run sql0 "select count(*) filter (where embedding is not null and embedding_model = 'embed-multilingual-v3.0' and memory_snippet is not null) from messages"
	assert_output 200
	run --separate-stderr unde-shard search <<<"$q"
	assert_success
	assert_jq '.episodes | length > 0'
	# nothing is left to do
	run --separate-stderr unde-embed --pending
	assert_success
	assert_output ''
}

@test "a 429 or 500 from Cohere, a wrong dimension or garbage fall through to the local embedder" {
	for fault in '{"mode":"429","count":-1}' '{"mode":"500","count":-1}' '{"mode":"malformed","count":-1}' dim short; do
		fake_reset cohere
		psql -XAtq "$UNDE_T_S0" -c "delete from messages; delete from conversations"
		case $fault in
		dim) fake_config cohere '{"dim":768}' ;;
		short) fake_config cohere '{"short":true}' ;;
		*) fake_fail cohere "$fault" ;;
		esac
		_save_many 3 "шерстяной свитер"
		run --separate-stderr unde-embed --pending
		assert_success
		assert_jq -s 'length == 3 and all(.enriched.provider == "local" and .enriched.embedding_model == "local-ngram-v1")'
		run sql0 "select count(*) from messages where embedding_model = 'local-ngram-v1'"
		assert_output 3
	done
}

@test "a query embedded locally never ranks a Cohere-embedded message, and --reembed moves a user over" {
	_save_many 3 "кожаная куртка чёрная"
	unde-embed --pending >/dev/null 2>&1
	lq='{"user_id":"'$USER_ID'","query_embedding":'"$(env -u COHERE_API_KEY unde-embed <<<'{"text":"кожаная куртка чёрная номер 1"}' 2>/dev/null | jq -c .embedding)"',"query_model":"local-ngram-v1"}'
	run --separate-stderr unde-shard search <<<"$lq"
	assert_jq '.episodes == []'
	run --separate-stderr unde-embed --reembed --model local-ngram-v1 --user "$USER_ID" --pending
	assert_success
	assert_json_line_count 3
	run sql0 "select count(*) from messages where embedding_model = 'local-ngram-v1'"
	assert_output 3
	run --separate-stderr unde-shard search <<<"$lq"
	assert_jq '.episodes | length == 3 and .[0].vec_score > 0.9'
	# a re-embed into Cohere's model never falls back to the local one
	fake_fail cohere '{"mode":"500","count":-1}'
	run --separate-stderr unde-embed --reembed --model embed-multilingual-v3.0 --pending
	assert_failure 75
	run sql0 "select count(*) from messages where embedding_model = 'local-ngram-v1'"
	assert_output 3
	grep -q '^embedding_ingestion_errors 3' "$TMP/unde-embed.prom"
}

@test "forgotten and erased messages are never embedded or given snippets, even when queued" {
	_save_many 4 "замшевые ботинки коричневые"
	conv=$(sql0 "select id from conversations where user_id = '$USER_ID'")
	m0=00000000-0000-4000-8000-000000000000 m1=00000000-0000-4000-8000-000000000001
	echo '{"conversation_id":"'$conv'","message_id":"'$m0'"}' | unde-shard forget >/dev/null 2>&1
	sql0 "update messages set deleted_at = now(), needs_enrichment = true where id = '$m1'" >/dev/null
	run --separate-stderr unde-embed --pending
	assert_success
	assert_json_line_count 2
	run sql0 "select count(*) from messages where id in ('$m0', '$m1') and (embedding is not null or memory_snippet is not null)"
	assert_output 0
	run --separate-stderr unde-embed <<<'{"conversation_id":"'$conv'","message_id":"'$m0'"}'
	assert_failure 65
	[[ $stderr == *message_forgotten* ]]
}

@test "a replayed row is backfilled and its mark cleared; metrics report the rates" {
	conv=$(uuid) u=$(uuid) a=$(uuid)
	pairs='[{"user":{"id":"'$u'","role":"user","content":"Ну, вообще-то в IMAX было холодно от кондиционера"},"assistant":{"id":"'$a'","role":"assistant","content":"Возьми тёплый слой"}}]'
	unde-shard replay <<<'{"conversation_id":"'$conv'","user_id":"'$USER_ID'","unconfirmed":'"$pairs"'}' >/dev/null 2>&1
	run sql0 "select count(*) from messages where needs_enrichment"
	assert_output 2
	run --separate-stderr unde-embed --pending
	assert_success
	assert_json_line_count 2
	run sql0 "select needs_enrichment, embedding is not null, coalesce(memory_snippet, '-') from messages order by role desc"
	assert_output $'f|t|в IMAX было холодно от кондиционера\nf|f|-'
	grep -q '^enrichment_backfill_rate 1$' "$TMP/unde-embed.prom"
	grep -q '^memory_snippet_null_rate 0$' "$TMP/unde-embed.prom"
	# the spec's name has no _total suffix: the only lint promtool may raise
	run promtool check metrics <"$TMP/unde-embed.prom"
	[[ $(grep -v 'should have "_total" suffix' <<<"$output" | grep -c .) == 0 ]]
}

# statements the server logged for the shard database since line $1 of its
# log that store messages' embeddings (log_statement = 'all' on it logs
# only the client's statements: store_enrichment()'s own are not)
_updates_logged_since() {
	tail -n +"$(($1 + 1))" "$PGTEST_DIR/server.log" | grep -cE 'UPDATE messages( m)? SET embedding|FROM store_enrichment' || true
}

@test "--pending stores 200 messages with one statement per 128 of them (EMBED_STORE_BATCH), not one per message" {
	_save_many 200 "хлопковое платье в горошек"
	psql -XAtq "$UNDE_T_S0" -c "alter database embed_shard0 set log_statement = 'all'" \
		-c "alter database embed_shard0 set log_parameter_max_length = 0"
	from=$(wc -l <"$PGTEST_DIR/server.log")
	run --separate-stderr env EMBEDDING_PROVIDER=local unde-embed --pending
	psql -XAtq "$UNDE_T_S0" -c "alter database embed_shard0 reset log_statement" \
		-c "alter database embed_shard0 reset log_parameter_max_length"
	assert_success
	assert_json_line_count 200
	[[ $(_updates_logged_since "$from") == 2 ]]
	grep -q '^unde_embed_update_statements 2$' "$TMP/unde-embed.prom"
	run sql0 "select count(*) from messages where embedding_model = 'local-ngram-v1' and memory_snippet is not null and not needs_enrichment"
	assert_output 200
	# EMBED_STORE_BATCH sets the statement's size: 10 messages by 4 are 3
	USER_ID=$(uuid)
	_save_many 10 "льняной пиджак бежевый"
	run --separate-stderr env EMBEDDING_PROVIDER=local EMBED_STORE_BATCH=4 unde-embed --pending
	assert_success
	assert_json_line_count 10
	grep -q '^unde_embed_update_statements 3$' "$TMP/unde-embed.prom"
}

@test "a message whose update fails fails alone: the rest of its batch is stored and the next run takes it again" {
	_save_many 5 "вельветовые брюки горчичные"
	bad=00000000-0000-4000-8000-000000000003
	sql0 "create function t_refuse() returns trigger language plpgsql as \$\$
	      begin if new.id = '$bad' and new.embedding is not null then
	      raise exception 'refused by the test trigger'; end if; return new; end \$\$;
	      create trigger t_refuse before update on messages for each row execute function t_refuse()" >/dev/null
	run --separate-stderr env EMBEDDING_PROVIDER=local unde-embed --pending
	sql0 "drop trigger t_refuse on messages; drop function t_refuse()" >/dev/null
	assert_failure
	assert_json_line_count 4
	assert_jq -s 'all(.message_id != "'$bad'")'
	# one error line, for that message, with the database's reason
	[[ $(grep -c '"level":"error".*"record"' <<<"$stderr") == 1 ]]
	grep '"level":"error".*"record"' <<<"$stderr" | jq_e '.record.message_id == "'$bad'" and (.error.message | test("refused by the test trigger"))'
	# the batch, then each of its five alone
	grep -q '^unde_embed_update_statements 6$' "$TMP/unde-embed.prom"
	run sql0 "select id from messages where embedding is null"
	assert_output "$bad"
	run --separate-stderr env EMBEDDING_PROVIDER=local unde-embed --pending
	assert_success
	assert_jq '.message_id == "'$bad'" and .enriched.embedding_model == "local-ngram-v1"'
	run sql0 "select count(*) from messages where embedding is null or memory_snippet is null"
	assert_output 0
}

@test "SNIPPET_PROVIDERS: Gemini's card, DeepSeek's when Gemini fails, the rule's when both fail" {
	export SNIPPET_PROVIDERS=gemini,deepseek GEMINI_API_KEY=test-key DEEPSEEK_API_KEY=test-key EMBEDDING_PROVIDER=local
	msg="Ну, вообще-то в IMAX было холодно от кондиционера"
	save1() {
		psql -XAtq "$UNDE_T_S0" -c "delete from messages; delete from conversations"
		jq -nc --arg u "$USER_ID" --arg t "$msg" --arg id "$(uuid)" '{user_id: $u, messages: [{id: $id, role: "user", content: $t}]}' | unde-shard save >/dev/null
	}
	save1
	fake_config gemini '{"reply_text": " «IMAX: холодно от кондиционера → брать тёплый слой»\n"}'
	run --separate-stderr unde-embed --pending
	assert_success
	assert_jq '.enriched.snippet_provider == "gemini" and .enriched.memory_snippet == "«IMAX: холодно от кондиционера → брать тёплый слой»"'
	run sql0 "select memory_snippet from messages"
	assert_output "«IMAX: холодно от кондиционера → брать тёплый слой»"
	fake_requests gemini | jq_e --arg t "$msg" 'length == 1 and (.[0].path | test("/v1beta/models/gemini-2.0-flash-lite:generateContent$")) and .[0].json.contents[0].parts[0].text == $t and (.[0].json.systemInstruction.parts[0].text | test("80 characters")) and .[0].headers["x-goog-api-key"] == "test-key"'
	[[ $(fake_requests deepseek | jq length) == 0 ]]

	save1
	fake_fail gemini '{"mode":"500","count":-1}'
	fake_config deepseek '{"reply_text": "В IMAX холодно от кондиционера → тёплый слой"}'
	run --separate-stderr unde-embed --pending
	assert_success
	assert_jq '.enriched.snippet_provider == "deepseek" and .enriched.memory_snippet == "В IMAX холодно от кондиционера → тёплый слой"'
	fake_requests deepseek | jq_e --arg t "$msg" 'length == 1 and .[0].json.model == "deepseek-chat" and .[0].json.messages[1].content == $t and .[0].headers.authorization == "Bearer test-key"'

	save1
	fake_fail deepseek '{"mode":"429","count":-1}'
	run --separate-stderr unde-embed --pending
	assert_success
	assert_jq '.enriched.snippet_provider == "local" and .enriched.memory_snippet == "в IMAX было холодно от кондиционера"'
	grep -q '^unde_embed_snippet_fallbacks 1$' "$TMP/unde-embed.prom"
	grep -q '^memory_snippet_null_rate 0$' "$TMP/unde-embed.prom"
}

@test "a snippet answer that is empty, on several lines, over 80 characters or late falls back to the rule" {
	export SNIPPET_PROVIDERS=deepseek DEEPSEEK_API_KEY=test-key EMBEDDING_PROVIDER=local
	long=$(printf 'очень%.0s ' {1..20})
	for reply in '"   "' '"первая строка\nвторая строка"' "\"$long\"" hang; do
		fake_reset deepseek
		psql -XAtq "$UNDE_T_S0" -c "delete from messages; delete from conversations"
		_save_many 1 "шерстяное пальто осталось в такси"
		if [[ $reply == hang ]]; then
			fake_fail deepseek '{"mode":"hang","delay_ms":20000}'
			export SNIPPET_TIMEOUT=1
		else
			fake_config deepseek '{"reply_text": '"$reply"'}'
		fi
		run --separate-stderr unde-embed --pending
		assert_success
		assert_jq '.enriched.snippet_provider == "local" and .enriched.memory_snippet == "шерстяное пальто осталось в такси номер 0"'
		[[ $(fake_requests deepseek | jq length) == 1 ]]
	done
}

@test "after three messages on which every snippet provider failed, the run stops calling them" {
	export SNIPPET_PROVIDERS=gemini GEMINI_API_KEY=test-key EMBEDDING_PROVIDER=local
	fake_fail gemini '{"mode":"503","count":-1}'
	_save_many 6 "кашемировый шарф серый"
	run --separate-stderr unde-embed --pending
	assert_success
	assert_json_line_count 6
	assert_jq -s 'all(.enriched.snippet_provider == "local" and (.enriched.memory_snippet | startswith("кашемировый шарф серый")))'
	[[ $(fake_requests gemini | jq length) == 3 ]]
	grep -q '^unde_embed_snippet_fallbacks 6$' "$TMP/unde-embed.prom"
	[[ $stderr == *"the rule only for the rest of the run"* ]]
}

@test "a snippet provider without its key is not called, and an unknown one is a configuration error" {
	export SNIPPET_PROVIDERS=gemini EMBEDDING_PROVIDER=local
	_save_many 1 "джинсовая куртка с мехом"
	run --separate-stderr unde-embed --pending
	assert_success
	assert_jq '.enriched.snippet_provider == "local"'
	[[ $(fake_requests gemini | jq length) == 0 ]]
	run --separate-stderr env SNIPPET_PROVIDERS=gemini,openai unde-embed --pending
	assert_failure 78
	[[ $stderr == *SNIPPET_PROVIDERS* && $stderr == *openai* ]]
	run sql0 "select count(*) from messages where memory_snippet is not null"
	assert_output 1
}
