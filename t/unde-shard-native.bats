#!/usr/bin/env bats
# unde-shard's vector branch inside PostgreSQL (issue 9): unde_vector_topk
# (src/shard/pg/unde_vector.c), created by unde-db from the built module,
# gives the SQL plan's answers; a shard without it, or whose library is
# gone, runs the branch in SQL.

load lib/common
load lib/pg

setup_file() {
	pg_start
	export UNDE_T_S0
	UNDE_T_S0=$(pg_shard_db shard0 0)
	# one history for every test: 1,200 vectors of a user (a crowded topic,
	# forgotten, not embeddable, another model, assistant rows among them),
	# and a neighbour in the same partition
	export UNDE_T_USER UNDE_T_OTHER
	UNDE_T_USER=$(uuid)
	UNDE_T_OTHER=$(uuid)
	python3 - "$UNDE_T_USER" "$UNDE_T_OTHER" >"$BATS_FILE_TMPDIR/turns" <<-'PY'
	import json, random, sys, uuid
	random.seed(11)
	user, other = sys.argv[1], sys.argv[2]
	topic = [random.gauss(0, 1) for _ in range(1024)]
	def near(w):
	    return [round(w * t + random.gauss(0, 1), 4) for t in topic]
	for who, n in ((user, 1200), (other, 300)):
	    msgs = []
	    for k in range(n):
	        m = {"id": str(uuid.uuid4()), "role": "user", "content": "message %d" % k,
	             "is_embeddable": k % 17 != 0, "embedding": near(random.uniform(0.4, 0.8))}
	        if k % 23 == 0:
	            m["embedding_model"] = "local-ngram-v1"
	        if k % 29 == 0:
	            m["role"] = "assistant"
	        msgs.append(m)
	    for i in range(0, n, 150):
	        print(json.dumps({"user_id": who, "messages": msgs[i:i + 150]}))
	PY
	SHARD_0_DB_URL=$UNDE_T_S0 unde-shard save <"$BATS_FILE_TMPDIR/turns" >/dev/null 2>&1
	# spread over 400 days, so that search's 3-a-day diversity lets 20 through
	psql -XAt "$UNDE_T_S0" -c "update messages
	  set created_at = created_at - (abs(hashtext(id::text)) % 400) * interval '1 day'" >/dev/null
	python3 - >"$BATS_FILE_TMPDIR/queries" <<-'PY'
	import json, random
	random.seed(11)
	topic = [random.gauss(0, 1) for _ in range(1024)]
	random.seed(12)
	for k in range(8):
	    w = (0.6, 1.0, 3.0, 0.0)[k % 4]
	    print(json.dumps([round(w * t + random.gauss(0, 1), 4) for t in topic]))
	PY
}

teardown_file() {
	pg_stop
	unde_teardown_file
}

teardown() {
	unde_teardown
}

setup() {
	export SHARD_0_DB_URL=$UNDE_T_S0
	TMP=$(unde_tmpdir)
}

sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# searches PLAN [MODEL] — each of the queries file's vectors searched with
# --plan PLAN (20 episodes, no text), one line of ids and scores each.
searches() {
	local model=${2:+,\"query_model\":\"$2\"}
	while read -r v; do
		echo '{"user_id":"'$UNDE_T_USER'","query_embedding":'"$v$model"',"top_k":20}'
	done <"$BATS_FILE_TMPDIR/queries" |
		UNDE_LOG_LEVEL=debug unde-shard search --plan "$1" 2>>"$TMP/log.$1" |
		jq -c '[.episodes[] | [.id, (.vec_score * 1e9 | round)]]'
}

@test "unde-db creates unde_vector_topk from the built module when it migrates a shard" {
	run sql0 "select probin from pg_proc where proname = 'unde_vector_topk'"
	assert_output "$UNDE_TOP_BUILDDIR/src/shard/pg/unde_vector.so"
	run unde-db migrate shard --url "$UNDE_T_S0"
	assert_success
	assert_output --partial '"native vector branch installed"'
}

@test "the native branch gives the SQL plan's episodes, on pages the visibility map cannot vouch for and after VACUUM" {
	# rows just saved and just forgotten: their pages are not all-visible
	sql0 "update messages set is_forgotten = true, embedding = null
	      where id in (select id from messages order by id limit 40)" >/dev/null
	[ "$(sql0 "select count(*) from messages where embedding is not null")" -gt 1000 ]
	native=$(searches prefilter) sql=$(searches sql)
	assert_equal "$native" "$sql"
	grep -q '"plan":"native"' "$TMP/log.prefilter"
	! grep -q '"plan":"native"' "$TMP/log.sql"
	[ "$(jq -s 'map(length) | max' <<<"$native")" -eq 20 ]
	sql0 "vacuum analyze messages" >/dev/null
	assert_equal "$(searches prefilter)" "$sql"
	assert_equal "$(searches sql)" "$sql"
}

@test "the native branch keeps to the query's model and the user's own messages" {
	native=$(searches prefilter local-ngram-v1) sql=$(searches sql local-ngram-v1)
	assert_equal "$native" "$sql"
	n=$(jq -s 'map(length) | add' <<<"$native")
	[ "$n" -gt 0 ]
	ids=$(jq -r '.[][0]' <<<"$native" | sort -u | sed "s/.*/'&'/" | paste -sd,)
	run sql0 "select count(*) from messages m join conversations c on c.id = m.conversation_id
	          where m.id in ($ids) and (c.user_id <> '$UNDE_T_USER'
	            or m.embedding_model is distinct from 'local-ngram-v1' or m.role <> 'user')"
	assert_output 0
}

@test "a sparse query is ranked by code overlap in the native branch as in SQL" {
	python3 -c 'import json; print(json.dumps([1] * 40 + [0] * 984))' >"$TMP/q"
	for plan in prefilter sql; do
		echo '{"user_id":"'$UNDE_T_USER'","query_embedding":'"$(cat "$TMP/q")"',"top_k":20}' |
			UNDE_LOG_LEVEL=debug unde-shard search --plan $plan 2>"$TMP/e.$plan" |
			jq -c '[.episodes[] | .id]' >"$TMP/o.$plan"
	done
	assert_equal "$(cat "$TMP/o.prefilter")" "$(cat "$TMP/o.sql")"
	grep -q '"plan":"native"' "$TMP/e.prefilter"
}

@test "a shard whose server cannot load the module runs the branch in SQL" {
	url=$(pg_createdb nomodule)
	run env UNDE_PG_MODULE=/nonexistent/unde_vector.so unde-db migrate shard --url "$url"
	assert_success
	assert_output --partial '"native vector branch not installed: search runs it in SQL"'
	assert_output --partial '58P01'
	run psql -XAt "$url" -c "select to_regproc('unde_vector_topk') is null"
	assert_output t
	SHARD_0_DB_URL=$url unde-shard save <<<'{"user_id":"'$UNDE_T_USER'","messages":[{"id":"'$(uuid)'","role":"user","content":"x","is_embeddable":true,"embedding":'"$(head -1 "$BATS_FILE_TMPDIR/queries")"'}]}' >/dev/null 2>&1
	SHARD_0_DB_URL=$url UNDE_LOG_LEVEL=debug run --separate-stderr unde-shard search \
		<<<'{"user_id":"'$UNDE_T_USER'","query_embedding":'"$(head -1 "$BATS_FILE_TMPDIR/queries")"'}'
	assert_success
	assert_jq '.episodes | length == 1'
	[[ $stderr == *'"plan":"sql"'* ]]
}

@test "a shard whose module went missing after install falls back to SQL for that search" {
	url=$(pg_createdb lostmodule)
	cp "$UNDE_TOP_BUILDDIR/src/shard/pg/unde_vector.so" "$TMP/unde_vector.so"
	chmod 755 "$TMP"
	UNDE_PG_MODULE=$TMP/unde_vector.so unde-db migrate shard --url "$url" >/dev/null 2>&1
	run psql -XAt "$url" -c "select probin from pg_proc where proname = 'unde_vector_topk'"
	assert_output "$TMP/unde_vector.so"
	rm "$TMP/unde_vector.so"
	v=$(head -1 "$BATS_FILE_TMPDIR/queries")
	SHARD_0_DB_URL=$url unde-shard save <<<'{"user_id":"'$UNDE_T_USER'","messages":[{"id":"'$(uuid)'","role":"user","content":"x","is_embeddable":true,"embedding":'"$v"'}]}' >/dev/null 2>&1
	SHARD_0_DB_URL=$url UNDE_LOG_LEVEL=debug run --separate-stderr unde-shard search \
		<<<'{"user_id":"'$UNDE_T_USER'","query_embedding":'"$v"'}'
	assert_success
	assert_jq '.episodes | length == 1'
	[[ $stderr == *'"native vector branch failed: running it in SQL"'* ]]
	[[ $stderr == *'"plan":"sql"'* ]]
}

@test "unde_vector_topk checks the caller may read messages, and names a bad argument" {
	conv=$(sql0 "select conversation_id from messages limit 1")
	sql0 "create role unde_t_nobody" >/dev/null 2>&1 || true
	run psql -XAt "$UNDE_T_S0" -v ON_ERROR_STOP=1 -c "set role unde_t_nobody" \
		-c "select * from unde_vector_topk('messages', '$conv', array_fill(1, array[1024])::vector, null, 300, 3000, 341, 'hamming', 20)"
	assert_failure
	assert_output --partial "permission denied for table messages"
	# row-level security is the executor's to apply: refused, not bypassed
	run psql -XAt "$UNDE_T_S0" -v ON_ERROR_STOP=1 -c "grant select on messages to unde_t_nobody" \
		-c "alter table messages enable row level security" -c "set role unde_t_nobody" \
		-c "select * from unde_vector_topk('messages', '$conv', array_fill(1, array[1024])::vector, null, 300, 3000, 341, 'hamming', 20)"
	sql0 "alter table messages disable row level security; revoke select on messages from unde_t_nobody" >/dev/null
	assert_failure
	assert_output --partial 'messages has row-level security, which this function cannot apply'
	run psql -XAt "$UNDE_T_S0" -v ON_ERROR_STOP=1 \
		-c "select * from unde_vector_topk('messages', '$conv', array_fill(1, array[1024])::vector, null, 300, 3000, 341, 'cosine', 20)"
	assert_failure
	assert_output --partial 'metric must be hamming or jaccard, not "cosine"'
	run psql -XAt "$UNDE_T_S0" -v ON_ERROR_STOP=1 \
		-c "select * from unde_vector_topk('conversations', '$conv', array_fill(1, array[1024])::vector, null, 300, 3000, 341, 'hamming', 20)"
	assert_failure
	assert_output --partial 'no column'
	run psql -XAt "$UNDE_T_S0" -v ON_ERROR_STOP=1 \
		-c "select * from unde_vector_topk('messages', '$conv', array_fill(1, array[512])::vector, null, 300, 3000, 341, 'hamming', 20)"
	assert_failure
	assert_output --partial 'a stored code of 1024 bits'
	run psql -XAt "$UNDE_T_S0" -c "select count(*) from unde_vector_topk(null, '$conv', array_fill(1, array[1024])::vector, null, 300, 3000, 341, 'hamming', 20)"
	assert_output 0
}

@test "codes and model names the index stored compressed (8,000 dimensions, a 2,000-byte model) are read as the rows hold them" {
	# an index tuple compresses a value over ~500 bytes: here every code
	# (1,000 bytes of mostly ones) and half the rows' model names
	conv=$(uuid)
	sql0 "create schema wide;
	  create table wide.messages (id uuid not null, conversation_id uuid not null, role text not null,
	    is_embeddable boolean not null default true, is_forgotten boolean not null default false,
	    embedding vector(8000), embedding_model text,
	    embedding_bq bit(8000) generated always as (binary_quantize(embedding)::bit(8000)) stored)
	    partition by hash (conversation_id);
	  create table wide.messages_p0 partition of wide.messages for values with (modulus 1, remainder 0);
	  create index idx_messages_vector_prefilter_model on wide.messages (conversation_id)
	    include (id, embedding_model, embedding_bq)
	    where role = 'user' and is_embeddable and not is_forgotten and embedding is not null;
	  insert into wide.messages (id, conversation_id, role, embedding_model, embedding)
	    select gen_random_uuid(), '$conv', 'user', case when r % 2 = 0 then repeat('m', 2000) end,
	      (select array_agg(case when i <= 37 * r then -1 else 1 + (i % 7) * 0.01 * r end order by i)
	       from generate_series(1, 8000) i)::vector
	    from generate_series(1, 60) r" >/dev/null
	q="array_fill(1, array[8000])::vector"
	for model in null "repeat('m', 2000)"; do
		native=$(sql0 "select string_agg(id || ':' || round(distance::numeric, 9), ',' order by distance, id)
		  from unde_vector_topk('wide.messages', '$conv', $q, $model, 4, 4, 4000, 'hamming', 3)")
		sql=$(sql0 "select string_agg(id || ':' || round(d::numeric, 9), ',' order by d, id) from (
		  select id, d from (
		    select id, embedding <=> $q as d from wide.messages
		    where conversation_id = '$conv' and role = 'user' and is_embeddable and not is_forgotten
		      and embedding is not null and embedding_model is not distinct from $model
		    order by embedding_bq <~> binary_quantize($q)::bit(8000) limit 4) c
		  order by d, id limit 3) best")
		[ -n "$native" ]
		assert_equal "$native" "$sql"
	done
	sql0 "drop schema wide cascade" >/dev/null
}
