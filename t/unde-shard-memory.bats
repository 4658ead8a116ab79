#!/usr/bin/env bats
# unde-shard under realistic use (issue 9): owner checks on forget and erase,
# client timestamps in the future, soft forget across a restore, erased bytes
# gone from the relation files, full text over natural sentences.

load lib/common
load lib/pg

setup_file() {
	pg_start
	export UNDE_T_PROD UNDE_T_S0
	UNDE_T_PROD=$(pg_migrated_db prod production)
	UNDE_T_S0=$(pg_shard_db shard0 0)
}

teardown_file() {
	pg_stop
	unde_teardown_file
}

teardown() {
	unde_teardown
}

setup() {
	export PRODUCTION_DB_URL=$UNDE_T_PROD SHARD_0_DB_URL=$UNDE_T_S0
	export MASTER_ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
	TMP=$(unde_tmpdir)
	export TOMBSTONE_COPY_FILE=$TMP/tombstones.jsonl
	USER_ID=$(uuid)
}


# vec A0 A1 … — a 1024-dim JSON vector whose first components are given.
vec() {
	python3 -c 'import sys, json; v=[float(x) for x in sys.argv[1:]]; print(json.dumps(v + [0.0] * (1024 - len(v))))' "$@"
}

# msg ID ROLE CONTENT [EXTRA-JSON-MEMBERS]
msg() {
	printf '{"id":"%s","role":"%s","content":"%s"%s}' "$1" "$2" "$3" "${4:+,$4}"
}

sql0() { psql -XAt "$UNDE_T_S0" -c "$1"; }

# save USER MESSAGE-JSON… — one turn of USER.
save() {
	local u=$1
	shift
	local IFS=,
	echo '{"user_id":"'$u'","messages":['"$*"']}' | unde-shard save >/dev/null 2>&1
}

conv_of() { sql0 "select id from conversations where user_id = '$1'"; }

@test "forget and erase refuse another user's conversation and change nothing" {
	victim=$(uuid) m=$(uuid)
	save "$victim" "$(msg "$m" user "мой размер обуви 38" '"is_embeddable":true,"memory_snippet":"размер 38","embedding":'"$(vec 1)")"
	save "$USER_ID" "$(msg "$(uuid)" user "привет" '"is_embeddable":false')"
	conv=$(conv_of "$victim")
	for sub in forget erase; do
		run --separate-stderr unde-shard "$sub" <<<'{"user_id":"'$USER_ID'","conversation_id":"'$conv'","message_id":"'$m'"}'
		assert_failure 65
		assert_stderr_error_code conversation_mismatch
	done
	run sql0 "select content, is_forgotten, memory_snippet, embedding is not null from messages where id = '$m'"
	assert_output 'мой размер обуви 38|f|размер 38|t'
	run psql -XAt "$UNDE_T_PROD" -c "select count(*) from deleted_messages_registry where message_id = '$m'"
	assert_output 0
	# the owner's own request goes through
	run --separate-stderr unde-shard forget <<<'{"user_id":"'$victim'","conversation_id":"'$conv'","message_id":"'$m'"}'
	assert_success
	assert_jq '.forgotten.messages == 1'
}

@test "a client created_at in the future is refused, and no row's recency boost exceeds 1.3" {
	m=$(uuid) soon=$(uuid) later=$(date -u -d '+200 days' +%FT%TZ)
	run --separate-stderr unde-shard save <<<'{"user_id":"'$USER_ID'","messages":['"$(msg "$m" user "из будущего" '"is_embeddable":true,"created_at":"'$later'","embedding":'"$(vec 1)")"']}'
	assert_failure 65
	assert_stderr_error_code invalid_field
	[[ $stderr == *"messages[0].created_at"*future* ]]
	# a created_at that is no timestamp is the caller's error too
	run --separate-stderr unde-shard save <<<'{"user_id":"'$USER_ID'","messages":['"$(msg "$(uuid)" user "когда-то" '"created_at":"yesterday-ish"')"']}'
	assert_failure 65
	assert_stderr_error_code invalid_field
	[[ $stderr == *"not a timestamp"* ]]
	run sql0 "select count(*) from messages where id = '$m'"
	assert_output 0
	# a phone clock a minute ahead is within the skew
	run --separate-stderr unde-shard save <<<'{"user_id":"'$USER_ID'","messages":['"$(msg "$soon" user "чуть вперёд" '"is_embeddable":true,"created_at":"'$(date -u -d '+1 minute' +%FT%TZ)'","embedding":'"$(vec 1)")"']}'
	assert_success
	# a row that got a future date some other way (an old client, a restore) is
	# still bounded by the formula's range: score <= (0.7 vec + 0.3 fts) * 1.3
	sql0 "update messages set created_at = now() + interval '200 days' where id = '$soon'" >/dev/null
	run --separate-stderr unde-shard search <<<'{"user_id":"'$USER_ID'","query_embedding":'"$(vec 1)"'}'
	assert_success
	assert_jq '.episodes | length == 1 and (.[0].score <= 0.7 * 1.3 + 1e-9)'
}

@test "a soft forget survives a restore: the forget registry and its copy are re-applied by apply-deletions" {
	m=$(uuid)
	save "$USER_ID" "$(msg "$m" user "я не ем глютен" '"is_embeddable":true,"memory_snippet":"не ест глютен","embedding":'"$(vec 1)")"
	echo '{"user_id":"'$USER_ID'","knowledge_type":"life_events","source_message_id":"'$m'","data":{"diet":"gluten-free"}}' |
		unde-shard knowledge put >/dev/null 2>&1
	conv=$(conv_of "$USER_ID")
	pg_dump -Fc -f "$TMP/before.dump" "$UNDE_T_S0"
	run --separate-stderr unde-shard forget <<<'{"user_id":"'$USER_ID'","conversation_id":"'$conv'","message_id":"'$m'"}'
	assert_success
	run psql -XAt "$UNDE_T_PROD" -c "select count(*), bool_and(exported_at is not null) from forgotten_messages_registry where message_id = '$m'"
	assert_output '1|t'
	jq_e --arg m "$m" 'select(.message_id == $m) | .type == "forget"' "$TOMBSTONE_COPY_FILE"
	for source in registry copy; do
		restored=$(pg_createdb "forget$source$RANDOM")
		pg_restore -d "$restored" "$TMP/before.dump" 2>/dev/null || true
		# the backup remembers the message …
		run psql -XAt "$restored" -c "select is_forgotten, memory_snippet from messages where id = '$m'"
		assert_output 'f|не ест глютен'
		# … until apply-deletions forgets it again, knowledge included
		if [[ $source == copy ]]; then
			run --separate-stderr env PRODUCTION_DB_URL=postgresql://nobody@127.0.0.1:1/x unde-shard apply-deletions --shard 0 --url "$restored" --from-copy "$TOMBSTONE_COPY_FILE"
		else
			run --separate-stderr unde-shard apply-deletions --shard 0 --url "$restored"
		fi
		assert_success
		assert_jq '.messages_forgotten == 1 and .knowledge_deactivated == 1'
		run psql -XAt "$restored" -c "select is_forgotten, embedding is null, memory_snippet is null from messages where id = '$m'"
		assert_output 't|t|t'
		run psql -XAt "$restored" -c "select bool_or(is_active) from user_knowledge where source_message_id = '$m'"
		assert_output 'f'
		# applying twice changes nothing
		run --separate-stderr unde-shard apply-deletions --shard 0 --url "$restored"
		assert_jq '.messages_forgotten == 0 and .knowledge_deactivated == 0'
	done
}

# grep_db URL TEXT — the files of URL's database (heap, TOAST, indexes) that
# hold TEXT, after a checkpoint has written every dirty page.
grep_db() {
	local oid
	psql -XAtq "$1" -c checkpoint
	oid=$(psql -XAt "$1" -c "select oid from pg_database where datname = current_database()")
	_pg_as_owner grep -rlF -- "$2" "$PGTEST_DIR/data/base/$oid" || true
}

@test "erased bytes leave the relation files after compact: heap, TOAST and the full-text index" {
	m1=$(uuid) m2=$(uuid)
	short="zquxvelmarker$RANDOM" long="zquxtoastmarker$RANDOM"
	# a long message lives in TOAST, a short one in the heap; both in the GIN index
	words=$(python3 -c 'import random, string; print(" ".join("".join(random.choice(string.ascii_lowercase) for _ in range(9)) for _ in range(450)))')
	save "$USER_ID" "$(msg "$m1" user "мой пароль от почты $short" '"is_embeddable":true,"embedding":'"$(vec 1)")" \
		"$(msg "$m2" user "$long $words" '"is_embeddable":false')"
	conv=$(conv_of "$USER_ID")
	run grep_db "$UNDE_T_S0" "$short"
	[[ -n $output ]]
	run grep_db "$UNDE_T_S0" "$long"
	[[ -n $output ]]
	run --separate-stderr unde-shard erase <<<'{"user_id":"'$USER_ID'","conversation_id":"'$conv'","message_ids":["'$m1'","'$m2'"]}'
	assert_success
	assert_jq '.erased.messages == 2'
	part=$(sql0 "select tableoid::regclass from messages where id = '$m1'")
	run sql0 "select relation from erasure_pending"
	assert_output "$part"
	run --separate-stderr unde-shard compact --shard 0
	assert_success
	assert_jq --arg p "$part" 'select(.relation == $p) | .bytes_after > 0'
	run grep_db "$UNDE_T_S0" "$short"
	assert_output ''
	run grep_db "$UNDE_T_S0" "$long"
	assert_output ''
	run sql0 "select count(*) from erasure_pending"
	assert_output 0
	# the erased rows are still tombstones, searchable by nobody
	run sql0 "select content from messages where id = '$m1'"
	assert_output '[deleted]'
	# a second run has nothing to do
	run --separate-stderr unde-shard compact --shard 0
	assert_success
	assert_output ''
}

@test "erase --user queues the user's relations for compact, and route never places the erased user again" {
	m=$(uuid)
	save "$USER_ID" "$(msg "$m" user "мне нравится бренд zquxbrand" '"is_embeddable":true,"embedding":'"$(vec 1)")"
	unde-shard route "$USER_ID" >/dev/null
	part=$(sql0 "select tableoid::regclass from messages where id = '$m'")
	run --separate-stderr unde-shard erase --user "$USER_ID"
	assert_success
	run sql0 "select count(*) from erasure_pending where relation in ('$part', 'user_knowledge', 'conversations')"
	assert_output 3
	run --separate-stderr unde-shard route "$USER_ID"
	assert_failure 65
	assert_stderr_error_code user_erased
	run psql -XAt "$UNDE_T_PROD" -c "select count(*) from routing_table where user_id = '$USER_ID'"
	assert_output 0
	run --separate-stderr unde-shard compact --shard 0
	assert_success
	run grep_db "$UNDE_T_S0" zquxbrand
	assert_output ''
}

@test "full text over a natural sentence: any of its words match, a rare word outweighs common ones, ties go to the newest" {
	rows=()
	for i in $(seq 1 20); do
		rows+=("$(msg "$(uuid)" user "я люблю кофе по утрам $i" '"created_at":"'$(date -u -d "-$((i + 1)) days" +%FT%TZ)'"')")
	done
	z=$(uuid) old=$(uuid) new=$(uuid)
	rows+=("$(msg "$z" user "zara мой любимый бренд" '"created_at":"'$(date -u -d '-30 days' +%FT%TZ)'"')")
	rows+=("$(msg "$old" user "купила ботинки massimo" '"created_at":"'$(date -u -d '-300 days' +%FT%TZ)'"')")
	rows+=("$(msg "$new" user "вернула ботинки massimo" '"created_at":"'$(date -u -d '-200 days' +%FT%TZ)'"')")
	save "$USER_ID" "${rows[@]}"
	q='{"user_id":"'$USER_ID'","query":"я ищу что-нибудь похожее на zara"}'
	# the spec's plainto_tsquery ANDs every word: the sentence matches nothing
	run --separate-stderr unde-shard search --plan spec <<<"$q"
	assert_success
	assert_jq '.episodes == []'
	run --separate-stderr unde-shard search <<<"$q"
	assert_success
	# the one message with the rare word comes first, well above the common word's
	assert_jq --arg z "$z" '.episodes[0].id == $z and .episodes[0].fts_score > 0.5'
	assert_jq --arg z "$z" '[.episodes[] | select(.id != $z) | .fts_score] | length > 0 and all(. < 0.2)'
	# two messages with the same words and the same score: the newer first
	run --separate-stderr unde-shard search <<<'{"user_id":"'$USER_ID'","query":"где мои massimo ботинки"}'
	assert_jq --arg o "$old" --arg n "$new" '[.episodes[].id] | index($n) < index($o)'
	assert_jq '.episodes[0].fts_score == .episodes[1].fts_score'
}

@test "full text past the walk: a common word brings only recent matches, a rare old word is still found and outranks it" {
	# 700 messages (more than the 500 newest the branch walks), one a day;
	# "платье" in all of them, "balenciaga" only in one 650 days old
	rare=$(uuid)
	python3 - "$USER_ID" "$rare" >"$TMP/turns" <<-'PY'
	import datetime, json, sys, uuid
	user, rare = sys.argv[1], sys.argv[2]
	now = datetime.datetime.now(datetime.timezone.utc)
	msgs = []
	for d in range(1, 701):
	    at = (now - datetime.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
	    text = "новое платье balenciaga" if d == 650 else "новое платье номер %d" % d
	    msgs.append({"id": rare if d == 650 else str(uuid.uuid4()), "role": "user", "content": text, "created_at": at})
	for i in range(0, len(msgs), 100):
	    print(json.dumps({"user_id": user, "messages": msgs[i:i + 100]}))
	PY
	unde-shard save <"$TMP/turns" >/dev/null 2>&1
	conv=$(conv_of "$USER_ID")
	run sql0 "select count(*) from messages where conversation_id = '$conv'"
	assert_output 700
	# the 500th newest message: common-word matches older than it are never walked
	edge=$(sql0 "select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') from messages
		where conversation_id = '$conv' order by created_at desc offset 499 limit 1")
	run --separate-stderr unde-shard search <<<'{"user_id":"'$USER_ID'","query":"платье balenciaga","top_k":30}'
	assert_success
	assert_jq --arg r "$rare" '.episodes[0].id == $r and .episodes[0].fts_score == 1'
	assert_jq --arg r "$rare" --arg e "$edge" '[.episodes[] | select(.id != $r)] | length > 0 and all(.created_at >= $e and .fts_score < 0.5)'
	# newest first among equal scores
	assert_jq --arg r "$rare" '[.episodes[] | select(.id != $r) | .created_at] | . == (sort | reverse)'
	# a word in every message: equal scores, so exactly its 10 newest matches
	run --separate-stderr unde-shard search <<<'{"user_id":"'$USER_ID'","query":"платье"}'
	assert_success
	assert_jq '[.episodes[].episode_card] == [range(1; 11) | "новое платье номер \(.)"]'
}

@test "a user message's tsv stays in its row beside the inline vector: reading it costs no TOAST fetch" {
	m=$(uuid)
	# a vector that does not compress, as real embeddings do not
	v=$(python3 -c 'import json, random; random.seed(5); print(json.dumps([random.uniform(-1, 1) for _ in range(1024)]))')
	save "$USER_ID" "$(msg "$m" user "ищу красное платье zara на вечер" '"is_embeddable":true,"embedding":'"$v")"
	conv=$(conv_of "$USER_ID")
	# the row is over the toaster's threshold (its 4 KB vector is inline)
	run sql0 "select pg_column_size(m.*) > 4096 from messages m where conversation_id = '$conv' and id = '$m'"
	assert_output t
	# buffers read to fetch the row by primary key: with tsv in TOAST,
	# detoasting it adds the TOAST index and page to what a fixed-width column costs
	hits() {
		sql0 "explain (analyze, buffers, costs off, timing off, format json) select $1 from messages
			where conversation_id = '$conv' and id = '$m'" |
			jq '.[0].Plan | ."Shared Hit Blocks" + ."Shared Read Blocks"'
	}
	fixed=$(hits 'created_at') tsv=$(hits 'length(tsv)')
	[ "$fixed" -gt 0 ]
	assert_equal "$tsv" "$fixed"
	run sql0 "select count(*) from pg_attribute a join pg_inherits i on i.inhrelid = a.attrelid
		where i.inhparent = 'messages'::regclass and a.attname = 'tsv' and a.attstorage <> 'm'"
	assert_output 0
}

@test "a crowded neighbourhood: the nearest vector is found even when 400 nearer-looking binary codes crowd the prefilter" {
	# the query has every sign bit set; 400 decoys share all its sign bits
	# (Hamming distance 0) at cosine 0.53, above the threshold; the true
	# nearest (cosine 0.70) has half its signs flipped (Hamming 512), so a
	# fixed 300-candidate prefilter never re-ranks it
	target=$(uuid)
	python3 - "$USER_ID" "$target" >"$TMP/turns" <<-'PY'
	import json, random, sys, uuid
	random.seed(3)
	user, target = sys.argv[1], sys.argv[2]
	msgs = []
	for k in range(400):
	    big = set(random.sample(range(1024), 256))
	    msgs.append({"id": str(uuid.uuid4()), "role": "user", "content": "decoy %d" % k, "is_embeddable": True,
	                 "embedding": [1 if i in big else 0.02 for i in range(1024)]})
	msgs.append({"id": target, "role": "user", "content": "the one", "is_embeddable": True,
	             "embedding": [1 if i < 512 else -0.01 for i in range(1024)]})
	for i in range(0, len(msgs), 150):
	    print(json.dumps({"user_id": user, "messages": msgs[i:i + 150]}))
	PY
	unde-shard save <"$TMP/turns" >/dev/null 2>&1
	run sql0 "select count(*) from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$USER_ID' and m.embedding is not null"
	assert_output 401
	q='{"user_id":"'$USER_ID'","query_embedding":'"$(python3 -c 'import json; print(json.dumps([1] * 1024))')"'}'
	run --separate-stderr unde-shard search <<<"$q"
	assert_success
	assert_jq --arg t "$target" '.episodes[0].id == $t and .episodes[0].vec_score > 0.69'
	# a fixed budget (the old behaviour) is what loses it: RETRIEVAL_CANDIDATES_MAX
	# at the minimum turns the adaptation off
	run --separate-stderr env RETRIEVAL_CANDIDATES_MAX=300 unde-shard search <<<"$q"
	assert_jq --arg t "$target" '[.episodes[].id] | index($t) == null'
}

@test "a sparse query (feature hashing: mostly zeros) is prefiltered by code overlap, not Hamming distance" {
	# the query's 40 coordinates are 1, the rest 0; 400 decoys set 2 of those
	# 40 (cosine 0.22, Hamming distance 38: their codes are small), the true
	# nearest sets all 40 and 200 more a little (cosine 0.98, Hamming 200).
	# By Hamming order the decoys fill 300 candidates; by Jaccard the
	# nearest is first
	target=$(uuid)
	python3 - "$USER_ID" "$target" >"$TMP/turns" <<-'PY'
	import json, random, sys, uuid
	random.seed(5)
	user, target = sys.argv[1], sys.argv[2]
	msgs = []
	for k in range(400):
	    two = set(random.sample(range(40), 2))
	    msgs.append({"id": str(uuid.uuid4()), "role": "user", "content": "decoy %d" % k, "is_embeddable": True,
	                 "embedding": [1 if i in two else 0 for i in range(1024)]})
	msgs.append({"id": target, "role": "user", "content": "the one", "is_embeddable": True,
	             "embedding": [1 if i < 40 else 0.1 if i < 240 else 0 for i in range(1024)]})
	for i in range(0, len(msgs), 150):
	    print(json.dumps({"user_id": user, "messages": msgs[i:i + 150]}))
	PY
	unde-shard save <"$TMP/turns" >/dev/null 2>&1
	q='{"user_id":"'$USER_ID'","query_embedding":'"$(python3 -c 'import json; print(json.dumps([1] * 40 + [0] * 984))')"'}'
	run --separate-stderr env RETRIEVAL_CANDIDATES_MAX=300 unde-shard search <<<"$q"
	assert_success
	assert_jq --arg t "$target" '[.episodes[].id] == [$t] and .episodes[0].vec_score > 0.97'
}

@test "knowledge put refuses a source_message_id that is not one of the user's messages" {
	other=$(uuid) theirs=$(uuid) mine=$(uuid)
	save "$other" "$(msg "$theirs" user "их сообщение")"
	save "$USER_ID" "$(msg "$mine" user "моё сообщение")"
	for src in "$theirs" "$(uuid)"; do
		run --separate-stderr unde-shard knowledge put <<<'{"user_id":"'$USER_ID'","knowledge_type":"budget","source_message_id":"'$src'","data":{"max":300}}'
		assert_failure 65
		assert_stderr_error_code source_mismatch
	done
	run sql0 "select count(*) from user_knowledge where user_id = '$USER_ID'"
	assert_output 0
	run --separate-stderr unde-shard knowledge put <<<'{"user_id":"'$USER_ID'","knowledge_type":"budget","source_message_id":"'$mine'","data":{"max":300}}'
	assert_success
}
