#!/usr/bin/env bats
# unde-cluster: the shard's Patroni + etcd cluster — generated configs, a
# loopback cluster, failover followed by the shard client with
# verify-and-replay, and the manual failback.

# read before common.bash scrubs UNDE_*; setup_file exports it for the tests
UNDE_T_DRILLS=${UNDE_T_DRILLS:-${UNDE_DRILLS:-}}
load lib/common
load lib/ha
load lib/pg
load lib/moto


# A port nothing listens on now, chosen by the OS.
_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The plain PostgreSQL the backup tests take their backups of.
pg_start_once() {
	pg_start
	export UNDE_T_BPROD UNDE_T_BSHARD
	UNDE_T_BPROD=$(pg_createdb bprod)
	UNDE_T_BSHARD=$(pg_createdb bshard)
	unde-db migrate production --url "$UNDE_T_BPROD" >/dev/null 2>&1
	unde-shard init --shard 0 --url "$UNDE_T_BSHARD" >/dev/null 2>&1
}

setup_file() {
	pg_start_once
	export UNDE_T_DRILLS
	if [[ $UNDE_T_DRILLS = 1 && $(id -u) = 0 ]]; then
		ha_start
		export UNDE_T_DB
		UNDE_T_DB=$(ha_db shard0)
		unde-shard init --shard 0 --url "$UNDE_T_DB" >/dev/null 2>&1
	fi
}

teardown_file() {
	ha_stop
	pg_stop
	unde_teardown_file
}

# restored servers started by a test never outlive it
teardown() {
	local d
	if [[ -f $BATS_FILE_TMPDIR/backup-dirs ]]; then
		while read -r d; do
			for pid in "$d"/r*/postmaster.pid; do
				[[ -f $pid ]] && _pg_as_owner "$PG_BINDIR/pg_ctl" stop -D "${pid%/postmaster.pid}" -m immediate >/dev/null 2>&1
			done
			rm -rf -- "$d"
		done <"$BATS_FILE_TMPDIR/backup-dirs"
		rm -f "$BATS_FILE_TMPDIR/backup-dirs"
	fi
	# a moto server started by a test goes with it (its variables do)
	[[ -n ${MOTO_PID:-}${MOTO_DIR:-} ]] && moto_stop
	unde_teardown
}

setup() {
	TMP=$(unde_tmpdir)
	if [[ -n ${HA_DIR:-} ]]; then
		set -a
		. "$HA_DIR/cluster.env"
		set +a
	fi
}

@test "unde-cluster --help and --version answer on stdout" {
	run unde-cluster --help
	assert_success
	assert_output --partial 'unde-cluster failback --to NAME'
	run unde-cluster --version
	assert_success
	assert_output --regexp '^unde-cluster [0-9]'
}

@test "an unknown subcommand is a usage error with a JSON error line" {
	run --separate-stderr unde-cluster frobnicate
	assert_failure 64
	assert_stderr_error_code usage
}

@test "config patroni renders a member: priority, etcd v3 hosts, archiving, no placeholder left" {
	run --separate-stderr env PATRONI_SUPERUSER_PASSWORD=s3cret PATRONI_REPLICATION_PASSWORD=r3pl \
		unde-cluster config patroni --name dubai --rest 10.0.0.5:8008 --pg 10.0.0.5:5432 \
		--etcd 10.0.0.5:2379,10.1.1.10:2379,10.1.1.20:2379 --data /pgdata --priority 2 \
		--archive-command "unde-cluster wal-push %p %f"
	assert_success
	printf '%s\n' "$output" >"$TMP/p.yml"
	run /usr/bin/python3 -c '
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c["name"] == "dubai" and c["tags"]["failover_priority"] == 2, c["tags"]
assert c["etcd3"]["hosts"] == "10.0.0.5:2379,10.1.1.10:2379,10.1.1.20:2379"
assert "etcd" not in c
p = c["bootstrap"]["dcs"]["postgresql"]["parameters"]
assert p["archive_mode"] == "on" and p["archive_command"] == "unde-cluster wal-push %p %f", p
assert c["postgresql"]["authentication"]["superuser"]["password"] == "s3cret"
assert "host all all 10.0.0.0/8 scram-sha-256" in c["bootstrap"]["pg_hba"]
print("ok")' "$TMP/p.yml"
	assert_success
	assert_output ok
}

@test "config patroni with --replica-from makes new replicas from the backup first, pg_basebackup only when that fails" {
	run --separate-stderr env PATRONI_SUPERUSER_PASSWORD=s3cret PATRONI_REPLICATION_PASSWORD=r3pl \
		unde-cluster config patroni --name hetzner --rest 10.1.1.10:8008 --pg 10.1.1.10:5432 \
		--etcd 10.0.0.5:2379 --data /pgdata --replica-from snapshot=/nvme/snapshots/shard-0
	assert_success
	printf '%s\n' "$output" >"$TMP/p.yml"
	run /usr/bin/python3 -c '
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))["postgresql"]
assert p["create_replica_methods"] == ["unde_backup", "basebackup"], p
m = p["unde_backup"]
assert m["command"] == "unde-cluster create-replica --from snapshot --repo /nvme/snapshots/shard-0", m
assert m["keep_data"] is False and m["no_params"] is False
print("ok")' "$TMP/p.yml"
	assert_output ok
	run --separate-stderr env PATRONI_SUPERUSER_PASSWORD=s PATRONI_REPLICATION_PASSWORD=r \
		unde-cluster config patroni --name h --rest 1:1 --pg 1:2 --etcd 1:3 --data /d --replica-from tape=/x
	assert_failure 64
}

@test "config patroni for a real host refuses to run without the passwords" {
	run --separate-stderr unde-cluster config patroni --name dubai --rest 10.0.0.5:8008 \
		--pg 10.0.0.5:5432 --etcd 10.0.0.5:2379 --data /pgdata
	assert_failure 78
	assert_stderr_error_code config
}

@test "config etcd renders a member of the 3-member v3 cluster with its gateway on" {
	run unde-cluster config etcd --name etcd-1 --peer 10.0.0.5:2380 --client 10.0.0.5:2379 \
		--initial-cluster etcd-1=http://10.0.0.5:2380,etcd-2=http://10.1.1.10:2380,etcd-3=http://10.1.1.20:2380 \
		--data /var/lib/etcd
	assert_success
	assert_output --partial 'initial-cluster: etcd-1=http://10.0.0.5:2380,etcd-2='
	assert_output --partial 'enable-grpc-gateway: true'
	run --separate-stderr unde-cluster config etcd --name etcd-1
	assert_failure 64
}

@test "failback without --to is a usage error" {
	run --separate-stderr env UNDE_CLUSTER_REST=http://127.0.0.1:1 unde-cluster failback
	assert_failure 64
}

@test "drill: the cluster comes up with n1 leading and n2 streaming its writes" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	run unde-cluster status
	assert_success
	assert_jq '[.members[] | select(.name == "n1")][0].role == "leader"'
	assert_jq '[.members[] | select(.name == "n2")][0].role == "replica"'
	# healthy needs lag 0: the previous test's writes may still be in flight
	local i
	for ((i = 0; i < 120; i++)); do
		run unde-cluster check --state-dir "$TMP/state"
		[ "$status" -eq 0 ] && break
		sleep 0.5
	done
	assert_success
	assert_jq '.leader == "n1" and .replica_up == 1 and .etcd_server_has_leader == 1 and .healthy'
	psql -XAtq "$UNDE_T_DB" -c "create table if not exists probe(x int); insert into probe values (1)"
	ha_wait_replica_streaming 60
	# streaming is not replayed yet: wait (bounded) for the row to arrive
	for ((i = 0; i < 300; i++)); do
		run psql -XAtq "${UNDE_CLUSTER_N2_URL%/postgres}/shard0" -c "select count(*) from probe"
		[ "$output" = 1 ] && break
		sleep 0.2
	done
	assert_output 1
}

@test "drill: a leader crash under 100 turns/s — save follows the failover, replay restores what async lost, 0 lost, 0 duplicated" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	user=$(uuid)
	old=$(ha_leader)
	( sleep 3; unde-cluster local crash "$HA_DIR" "$old" ) 2>/dev/null &
	crasher=$!
	run python3 "$UNDE_TOP_SRCDIR/t/lib/ha-writer.py" "$UNDE_T_DB" "$user" 100 12 "$TMP"
	wait "$crasher"
	assert_success
	summary=$output
	echo "# writer: $summary" >&3
	# every turn was acknowledged: the save process followed the failover
	[ "$(jq .sent <<<"$summary")" = "$(jq .acked <<<"$summary")" ]
	[ "$(jq .exit <<<"$summary")" = 0 ]
	grep -q '"shard reconnected"\|shard connection failed' "$TMP/save.err"
	# the RTO the client saw: within the spec's 30 s
	jq_e '.max_ack_gap_seconds < 30' <<<"$summary"
	new=$(ha_leader)
	[ "$new" != "$old" ]
	sent=$(jq -s 'map(.messages | length) | add' "$TMP/sent.jsonl")
	before=$(psql -XAtq "$UNDE_T_DB" -c "select count(*) from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$user'")
	# the client's buffer: every pair acknowledged in the last 60 s, replayed
	# 10 pairs per request with the last 3 confirmed ids as the safety net
	conv=$(jq -r .conversation_id "$TMP/acked.jsonl" | head -n 1)
	jq -c --arg c "$conv" --arg u "$user" -s '
		[range(0; length; 10) as $i | .[$i:$i+10]] | .[] |
		{conversation_id: $c, user_id: $u,
		 unconfirmed: map({user: .messages[0], assistant: .messages[1]}),
		 recent_confirmed_ids: (map(.messages[0].id) | .[-3:])}' "$TMP/acked.jsonl" >"$TMP/replay.jsonl"
	run --separate-stderr unde-shard replay --url "$UNDE_T_DB" <"$TMP/replay.jsonl"
	assert_success
	printf '%s\n' "$output" >"$TMP/replayed.jsonl"
	replayed=$(jq -s 'map(.replay.inserted | length) | add' "$TMP/replayed.jsonl")
	echo "# messages before replay: $before of $sent; replayed: $replayed" >&3
	after=$(psql -XAtq "$UNDE_T_DB" -c "select count(*), count(distinct m.id) from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$user'")
	[ "$after" = "$sent|$sent" ]
	[ $((before + replayed)) -eq "$sent" ]
	# every message the client sent is there, by id
	jq -r '.messages[].id' "$TMP/sent.jsonl" | sort >"$TMP/want"
	psql -XAtq "$UNDE_T_DB" -c "select m.id from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$user'" | sort >"$TMP/have"
	diff "$TMP/want" "$TMP/have"
	# replayed rows wait for the enrichment backfill…
	pending=$(psql -XAtq "$UNDE_T_DB" -c "select count(*) from messages where needs_enrichment")
	[ "$pending" -ge "$replayed" ]
	# …which enriches every one of them (§14: "every message enriched")
	run --separate-stderr env -u COHERE_API_KEY unde-embed --pending --limit 100000 --user "$user" --url "$UNDE_T_DB"
	assert_success
	run psql -XAtq "$UNDE_T_DB" -c "select count(*) filter (where needs_enrichment),
		count(*) filter (where is_embeddable and (embedding is null or embedding_model is null)),
		count(*) filter (where is_embeddable and role = 'user' and memory_snippet is null),
		count(*) filter (where is_embeddable)
		from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$user'"
	[[ $output =~ ^0\|0\|0\|[1-9][0-9]*$ ]]
}

@test "drill: failback is refused while the old primary is down, and too soon after it rejoined; accepted after, nothing lost" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	leader=$(ha_leader)
	other=n1
	[ "$leader" = n1 ] && other=n2
	run --separate-stderr unde-cluster failback --to "$other" --state-dir "$TMP/state" --min-healthy 0
	assert_failure 75
	assert_stderr_error_code not_healthy
	unde-cluster local start "$HA_DIR" "$other"
	ha_wait_node_replica "$other" 180
	unde-cluster check --state-dir "$TMP/state" >/dev/null
	run --separate-stderr unde-cluster failback --to "$other" --state-dir "$TMP/state" --min-healthy 600
	assert_failure 75
	assert_stderr_error_code too_soon
	count=$(psql -XAtq "$UNDE_T_DB" -c "select count(*) from messages")
	run --separate-stderr unde-cluster failback --to "$other" --state-dir "$TMP/state" --min-healthy 0
	assert_success
	assert_jq --arg o "$other" '.failback == "done" and .leader == $o'
	[ "$(ha_leader)" = "$other" ]
	run psql -XAtq "$UNDE_T_DB" -c "select count(*) from messages"
	assert_output "$count"
	# and the writer keeps writing on the new (old) primary
	u=$(uuid)
	run --separate-stderr unde-shard save --url "$UNDE_T_DB" <<<'{"user_id":"'$u'","messages":[{"id":"'$(uuid)'","role":"user","content":"after the failback"}]}'
	assert_success
}

@test "drill: point-in-time recovery from a basebackup and the WAL archive stops at the target, then apply-deletions runs" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	_backup_env
	src=${UNDE_CLUSTER_URL/postgres@/replicator@}
	run --separate-stderr unde-cluster backup basebackup --source "$src" --repo "$BK/repo"
	assert_success
	u=$(uuid) before=$(uuid) after=$(uuid)
	unde-shard save --url "$UNDE_T_DB" >/dev/null <<<'{"user_id":"'$u'","messages":[{"id":"'$before'","role":"user","content":"before the target"}]}'
	target=$(psql -XAtq "$UNDE_T_DB" -c "select now()")
	sleep 1.1
	unde-shard save --url "$UNDE_T_DB" >/dev/null <<<'{"user_id":"'$u'","messages":[{"id":"'$after'","role":"user","content":"after the target"}]}'
	# close the segment and wait until the archive has it
	seg=$(psql -XAtq "$UNDE_T_DB" -c "select pg_walfile_name(pg_current_wal_lsn())")
	psql -XAtq "$UNDE_T_DB" -c "select pg_switch_wal()" >/dev/null
	for i in $(seq 120); do [[ -f $UNDE_CLUSTER_ARCHIVE/$seg ]] && break; sleep 0.5; done
	[ -f "$UNDE_CLUSTER_ARCHIVE/$seg" ]
	port=$(_free_port)
	run --separate-stderr env PRODUCTION_DB_URL="$UNDE_T_BPROD" unde-cluster restore --from pitr --pitr "$target" \
		--archive "$UNDE_CLUSTER_ARCHIVE" --repo "$BK/repo" --data "$BK/r3" --port "$port" --db shard0
	assert_success
	assert_jq '.restored.from == "pitr" and (.restored.apply_deletions | type == "object")'
	run psql -XAtq "postgresql://postgres@127.0.0.1:$port/shard0" -c "select content from messages where id in ('$before', '$after')"
	assert_output 'before the target'
}

@test "drill: check writes the cluster's metrics for the textfile collector" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	ha_wait_replica_streaming 180
	UNDE_METRICS_DIR=$TMP/m run unde-cluster check --state-dir "$TMP/state"
	assert_success
	grep -qx 'replica_up 1' "$TMP/m/unde-cluster.prom"
	grep -qx 'etcd_server_has_leader 1' "$TMP/m/unde-cluster.prom"
	grep -qx 'patroni_replica_lag_bytes 0' "$TMP/m/unde-cluster.prom"
	# an idle primary's fully replayed replica is 0 s behind, not "now
	# minus the last replayed transaction"
	leader=$(ha_leader)
	replica=N1
	[ "$leader" = n1 ] && replica=N2
	var=UNDE_CLUSTER_${replica}_URL
	sleep 2 # idle: nothing has been written for a while
	for i in $(seq 60); do
		run --separate-stderr unde-shard status --url "${!var%/postgres}/shard0"
		jq_e '.role == "replica" and .replication_lag_seconds == 0' <<<"$output" >/dev/null && break
		sleep 0.5
	done
	assert_jq '.role == "replica" and .replication_lag_seconds == 0'
	run --separate-stderr unde-shard status --url "$UNDE_T_DB"
	assert_jq '.role == "primary" and (.replication_slot_wal_bytes | type == "number")'
}

@test "drill: a replica wiped and restarted is made by Patroni from the snapshot (unde_backup), not by a pg_basebackup of the leader, and streams what came after" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	ha_wait_replica_streaming 180
	leader=$(ha_leader)
	replica=n1
	[ "$leader" = n1 ] && replica=n2
	run --separate-stderr unde-cluster backup snapshot --source "${UNDE_CLUSTER_URL/postgres@/replicator@}" --dir "$UNDE_CLUSTER_SNAPSHOTS"
	assert_success
	u=$(uuid) m=$(uuid)
	run --separate-stderr unde-shard save --url "$UNDE_T_DB" <<<'{"user_id":"'$u'","messages":[{"id":"'$m'","role":"user","content":"after the snapshot"}]}'
	assert_success
	unde-cluster local crash "$HA_DIR" "$replica"
	sleep 0.5 # the killed postmaster's children go
	rm -rf "$HA_DIR/$replica/data"
	seen=$(wc -l <"$HA_DIR/$replica/patroni.log")
	unde-cluster local start "$HA_DIR" "$replica"
	ha_wait_node_replica "$replica" 180
	tail -n +$((seen + 1)) "$HA_DIR/$replica/patroni.log" >"$TMP/new.log"
	grep -q 'replica has been created using unde_backup' "$TMP/new.log" || {
		grep -i 'replica\|error\|unde_backup' "$TMP/new.log" | tail -n 40 >&2
		false
	}
	run grep -c 'replica has been created using basebackup' "$TMP/new.log"
	assert_output 0
	var=UNDE_CLUSTER_${replica^^}_URL
	for ((i = 0; i < 300; i++)); do
		run psql -XAtq "${!var%/postgres}/shard0" -c "select count(*) from messages where id = '$m'"
		[ "$output" = 1 ] && break
		sleep 0.2
	done
	[ "$output" = 1 ] || {
		unde-cluster status >&2
		tail -n 20 "$HA_DIR/$replica/patroni.log" >&2
	}
	assert_output 1
}

# ---- backups and restores (a plain PostgreSQL from t/lib/pg.bash) ----

_backup_env() {
	export PRODUCTION_DB_URL=$UNDE_T_BPROD SHARD_0_DB_URL=$UNDE_T_BSHARD
	export TOMBSTONE_COPY_FILE=$TMP/tombstones.jsonl
	BK=$(mktemp -d /tmp/unde-bk.XXXXXX)
	chown postgres: "$BK" 2>/dev/null || true
	echo "$BK" >>"$BATS_FILE_TMPDIR/backup-dirs"
}

_turn() { # user message-id content
	unde-shard save >/dev/null <<<'{"user_id":"'$1'","messages":[{"id":"'$2'","role":"user","content":"'"$3"'"}]}'
}

@test "retention on a simulated clock keeps 7 daily, 4 weekly and 3 monthly basebackups" {
	repo=$TMP/repo
	mkdir -p "$repo"
	# every 6 hours from 2026-01-01 to Thursday 2026-04-30 18:00
	t=$(date -u -d 2026-01-01T00:00:00Z +%s)
	end=$(date -u -d 2026-04-30T18:00:00Z +%s)
	names=()
	while ((t <= end)); do
		TZ=UTC printf -v n 'base-%(%Y%m%dT%H%M%SZ)T' "$t"
		names+=("$repo/$n")
		t=$((t + 21600))
	done
	mkdir "${names[@]}"
	run unde-cluster backup prune --repo "$repo"
	assert_success
	assert_jq '.pruned.kept == 11'
	run ls "$repo"
	assert_output "$(printf 'base-%sT180000Z\n' 20260228 20260331 20260412 20260419 20260424 20260425 20260426 20260427 20260428 20260429 20260430)"
}

@test "restore drill: a basebackup taken before an erase comes back without a trace of the erased content" {
	_backup_env
	ua=$(uuid) ub=$(uuid) m1=$(uuid) m2=$(uuid) m3=$(uuid)
	_turn "$ua" "$m1" "my secret gluten allergy zara"
	_turn "$ua" "$m2" "keep this one about linen"
	_turn "$ub" "$m3" "user b private dress size"
	run --separate-stderr unde-cluster backup basebackup --source "$PGTEST_URL_BASE/postgres" --repo "$BK/repo"
	assert_success
	conv=$(psql -XAtq "$UNDE_T_BSHARD" -c "select id from conversations where user_id = '$ua'")
	echo '{"conversation_id":"'$conv'","message_id":"'$m1'"}' | unde-shard erase >/dev/null 2>&1
	unde-shard erase --user "$ub" >/dev/null 2>&1
	port=$(_free_port)
	run --separate-stderr unde-cluster restore --from basebackup --repo "$BK/repo" --data "$BK/r1" \
		--port "$port" --db "${UNDE_T_BSHARD##*/}" --shard 0
	assert_success
	assert_jq '.restored.from == "basebackup" and .restored.apply_deletions.messages_erased == 1 and .restored.apply_deletions.users_erased == 1'
	url=postgresql://postgres@127.0.0.1:$port/${UNDE_T_BSHARD##*/}
	run psql -XAtq "$url" -c "select content from messages where id = '$m2'"
	assert_output 'keep this one about linen'
	run psql -XAtq "$url" -c "select content from messages where id = '$m1'"
	assert_output '[deleted]'
	pg_dump "$url" >"$TMP/dump.sql"
	run grep -c -e 'gluten allergy' -e 'user b private' -e "$ub" "$TMP/dump.sql"
	assert_output 0
	run psql -XAtq "$url" -c "select count(*) from conversations where user_id = '$ub'"
	assert_output 0
}

@test "erase copies its tombstones to object storage (no TOMBSTONE_COPY_FILE), and a restore re-applies them from there with production gone" {
	command -v "${MOTO_SERVER:-moto_server}" >/dev/null || skip "moto not installed"
	_backup_env
	unset TOMBSTONE_COPY_FILE
	moto_start
	export TOMBSTONE_COPY_BUCKET=$S3_BUCKET TOMBSTONE_COPY_PREFIX=shard-tombstones
	ua=$(uuid) ub=$(uuid) m1=$(uuid) m2=$(uuid) m3=$(uuid)
	_turn "$ua" "$m1" "an erased secret about my ankle"
	_turn "$ua" "$m2" "a kept note about silk"
	_turn "$ub" "$m3" "user b wants to vanish"
	run --separate-stderr unde-cluster backup basebackup --source "$PGTEST_URL_BASE/postgres" --repo "$BK/repo"
	assert_success
	conv=$(psql -XAtq "$UNDE_T_BSHARD" -c "select id from conversations where user_id = '$ua'")
	run --separate-stderr unde-shard erase <<<'{"conversation_id":"'$conv'","message_id":"'$m1'"}'
	assert_success
	assert_jq '.erased.copy == "s3://'$S3_BUCKET'/shard-tombstones"'
	run --separate-stderr unde-shard erase --user "$ub"
	assert_success
	# one object per batch, named by kind and first registry id, in object storage
	run moto_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --output json
	assert_jq '[.Contents[].Key | select(test("^shard-tombstones/message/[0-9]{20}\\.jsonl$"))] | length == 1'
	assert_jq '[.Contents[].Key | select(test("^shard-tombstones/user/[0-9]{20}\\.jsonl$"))] | length == 1'
	key=$(jq -r '[.Contents[].Key | select(startswith("shard-tombstones/message/"))][0]' <<<"$output")
	run moto_aws s3 cp "s3://$S3_BUCKET/$key" -
	assert_jq --arg m "$m1" '.type == "message" and .message_id == $m and .shard_id == 0'
	# both rows are marked exported: the next erase does not copy them again
	run psql -XAtq "$UNDE_T_BPROD" -c "select count(*) from deleted_messages_registry where exported_at is null"
	assert_output 0
	# production is gone: the restore reads the copy back from object storage
	port=$(_free_port)
	run --separate-stderr env PRODUCTION_DB_URL=postgresql://nobody@127.0.0.1:1/x \
		unde-cluster restore --from basebackup --repo "$BK/repo" --data "$BK/r5" --port "$port" \
		--db "${UNDE_T_BSHARD##*/}" --shard 0 --tombstones "s3://$S3_BUCKET/shard-tombstones"
	assert_success
	assert_jq '.restored.apply_deletions.source == "copy" and .restored.apply_deletions.messages_erased == 1 and .restored.apply_deletions.users_erased == 1'
	url=postgresql://postgres@127.0.0.1:$port/${UNDE_T_BSHARD##*/}
	pg_dump "$url" >"$TMP/dump.sql"
	run grep -c -e 'ankle' -e 'vanish' -e "$ub" "$TMP/dump.sql"
	assert_output 0
	run psql -XAtq "$url" -c "select content from messages where id = '$m2'"
	assert_output 'a kept note about silk'
	# the copy cannot be written: the erase fails (69) and erases nothing
	m4=$(uuid)
	_turn "$ua" "$m4" "this one must survive the failed erase"
	moto_stop
	run --separate-stderr unde-shard erase <<<'{"conversation_id":"'$conv'","message_id":"'$m4'"}'
	assert_failure 69
	assert_stderr_error_code copy_failed
	run psql -XAtq "$UNDE_T_BSHARD" -c "select content from messages where id = '$m4'"
	assert_output 'this one must survive the failed erase'
}

@test "restore drill: the local lz4 snapshot restores as primary, one copy kept, ages written as metrics" {
	_backup_env
	u=$(uuid) m=$(uuid)
	_turn "$u" "$m" "snapshot era message"
	UNDE_METRICS_DIR=$TMP/m run --separate-stderr unde-cluster backup snapshot --source "$PGTEST_URL_BASE/postgres" --dir "$BK/snap"
	echo "$stderr" >&2
	assert_success
	UNDE_METRICS_DIR=$TMP/m run --separate-stderr unde-cluster backup snapshot --source "$PGTEST_URL_BASE/postgres" --dir "$BK/snap"
	echo "$stderr" >&2
	assert_success
	run bash -c "ls -d '$BK'/snap/snapshot-* | wc -l"
	assert_output 1
	[ -f "$BK/snap/latest/base.tar.lz4" ]
	grep -Eq '^local_snapshot_age_hours 0(\.0+)?$|^local_snapshot_age_hours 0\.00[0-9]$' "$TMP/m/unde-backup.prom"
	port=$(_free_port)
	run --separate-stderr unde-cluster restore --from snapshot --dir "$BK/snap" --data "$BK/r2" --port "$port" \
		--db "${UNDE_T_BSHARD##*/}"
	echo "$stderr" >&2
	assert_success
	run psql -XAtq "postgresql://postgres@127.0.0.1:$port/${UNDE_T_BSHARD##*/}" -c "select content from messages where id = '$m'"
	assert_output 'snapshot era message'
}

@test "create-replica, run as Patroni runs it, makes a standby from the snapshot that then streams from the primary; without a backup it fails and leaves the directory empty" {
	_backup_env
	u=$(uuid) m=$(uuid) later=$(uuid)
	_turn "$u" "$m" "in the snapshot"
	run --separate-stderr unde-cluster backup snapshot --source "$PGTEST_URL_BASE/postgres" --dir "$BK/snap"
	assert_success
	_turn "$u" "$later" "written after the snapshot"
	# Patroni's call: its own parameters, the leader as --connstring
	leader="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
	run --separate-stderr unde-cluster create-replica --from snapshot --repo "$BK/snap" \
		--scope=unde-shard-0 --role=replica --datadir="$BK/r6" --connstring="$leader"
	assert_success
	assert_jq '.replica.from == "snapshot" and (.replica.backup | startswith("snapshot-")) and .replica.backup_age_hours == 0'
	[ -f "$BK/r6/PG_VERSION" ] && [ -f "$BK/r6/backup_label" ]
	# what Patroni does next: standby settings, start; it streams the rest
	port=$(_free_port)
	cat >>"$BK/r6/postgresql.auto.conf" <<-CONF
		port = $port
		unix_socket_directories = '$BK/r6'
		listen_addresses = '127.0.0.1'
		primary_conninfo = '$leader'
	CONF
	: >"$BK/r6/standby.signal"
	chown -R postgres: "$BK/r6" 2>/dev/null || true
	_pg_as_owner "$PG_BINDIR/pg_ctl" start -w -t 120 -D "$BK/r6" -l "$BK/r6/replica.log" >/dev/null
	url=postgresql://postgres@127.0.0.1:$port/${UNDE_T_BSHARD##*/}
	for ((i = 0; i < 300; i++)); do
		run psql -XAtq "$url" -c "select count(*) from messages where id in ('$m', '$later')"
		[ "$output" = 2 ] && break
		sleep 0.2
	done
	assert_output 2
	run psql -XAtq "$url" -c "select pg_is_in_recovery()"
	assert_output t
	run psql -XAtq "$PGTEST_URL_BASE/postgres" -c "select count(*) from pg_stat_replication where state = 'streaming'"
	[ "$output" -ge 1 ]
	# no backup (or only one too old): Patroni goes on to pg_basebackup, with
	# an empty directory
	mkdir -p "$BK/none" "$BK/r7" "$BK/r8"
	run --separate-stderr unde-cluster create-replica --from basebackup --repo "$BK/none" \
		--scope=unde-shard-0 --role=replica --datadir="$BK/r7" --connstring="$leader"
	assert_failure 66
	assert_stderr_error_code no_backup
	run ls -A "$BK/r7"
	assert_output ''
	jq '.finished -= 90000' "$BK/snap/latest/backup.json" >"$TMP/b.json" && cat "$TMP/b.json" >"$BK/snap/latest/backup.json"
	run --separate-stderr unde-cluster create-replica --from snapshot --repo "$BK/snap" \
		--role=replica --datadir="$BK/r8" --connstring="$leader"
	assert_failure 65
	assert_stderr_error_code backup_too_old
	run ls -A "$BK/r8"
	assert_output ''
}

@test "restore refuses a data directory that is not empty, and a repository without a backup" {
	mkdir -p "$TMP/full" "$TMP/empty"
	touch "$TMP/full/x"
	run --separate-stderr unde-cluster restore --from basebackup --repo "$TMP/empty" --data "$TMP/full" --port 5999
	assert_failure 73
	assert_stderr_error_code data_not_empty
	run --separate-stderr unde-cluster restore --from basebackup --repo "$TMP/empty" --data "$TMP/new" --port 5999
	assert_failure 66
	assert_stderr_error_code no_backup
}

@test "a basebackup of an unreachable server fails with 69 and leaves no partial backup" {
	run --separate-stderr unde-cluster backup basebackup --source postgresql://postgres@127.0.0.1:1/postgres --repo "$TMP/repo"
	assert_failure 69
	assert_stderr_error_code backup_failed
	run ls -A "$TMP/repo"
	assert_output ''
}

# _replay_httpd [-E VAR=VALUE…] — the shard's routes behind a real
# superserver on a checked port ($port, $pid), the backup test's databases.
_replay_httpd() {
	local try i
	mkdir -p "$TMP/c" "$TMP/m"
	for ((try = 0; try < 20; try++)); do
		port=$(unde_port_candidate)
		unde_port_taken "$port" && continue
		systemd-socket-activate --inetd -a -l "127.0.0.1:$port" -E UNDE_ENV_FILE=/dev/null \
			-E "PATH=$PATH" -E "PRODUCTION_DB_URL=$UNDE_T_BPROD" -E "SHARD_0_DB_URL=$UNDE_T_BSHARD" \
			-E "UNDE_COUNTERS_DIR=$TMP/c" -E "UNDE_METRICS_DIR=$TMP/m" "$@" \
			unde-httpd --routes "$UNDE_TOP_SRCDIR/etc/httpd/shard.routes" \
			--metrics-file "$TMP/httpd.metrics" </dev/null 2>>"$TMP/httpd.log" 3>&- &
		pid=$!
		for ((i = 0; i < 100; i++)); do
			curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" && return 0
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
	done
	return 1
}

# _replay_stop N — wait for the replay filter's textfile to count N
# requests (written when the connection's filter ends; stopping the
# listener earlier would cut it short), then stop the listener.
_replay_stop() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -qx "replay_requests_total $1" "$TMP/m/unde-shard-replay.prom" 2>/dev/null && break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# _post BODY — POST /verify-and-replay; $output is the body, then a line
# with the HTTP status.
_post() {
	run curl -s --max-time 30 -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$1" \
		"http://127.0.0.1:$port/verify-and-replay"
}

_pair() { # user-id assistant-id [assistant extra json members]
	printf '{"user":{"id":"%s","content":"lost in the failover: linen shirt size M"},"assistant":{"id":"%s","content":"and its answer"%s}}' "$1" "$2" "${3:+,$3}"
}

@test "POST /verify-and-replay through unde-httpd replays the missing pair, counts replay_requests_total, and unde-embed then enriches every replayed message" {
	_backup_env
	u=$(uuid) m1=$(uuid) m2=$(uuid) m3=$(uuid)
	_turn "$u" "$m1" "the confirmed one"
	conv=$(psql -XAtq "$UNDE_T_BSHARD" -c "select id from conversations where user_id = '$u'")
	_replay_httpd
	art='"artifact":{"type":"outfit","items":[{"brand":"Zara","name":"shirt","sku":"ZA-77","store":"Zara Dubai Mall"}]}'
	body='{"conversation_id":"'$conv'","user_id":"'$u'","unconfirmed":['"$(_pair "$m2" "$m3" "$art")"'],"recent_confirmed_ids":["'$m1'"]}'
	_post "$body"
	_replay_stop 1
	assert_success
	assert_line --index 1 200
	jq_e '(.replay.inserted | length) == 2 and .replay.confirmed_present == ["'$m1'"]' <<<"${lines[0]}"
	run psql -XAtq "$UNDE_T_BSHARD" -c "select count(*) from messages where id in ('$m2', '$m3') and needs_enrichment"
	assert_output 2
	grep -qx 'replay_requests_total 1' "$TMP/m/unde-shard-replay.prom"
	grep -qx 'replay_messages_inserted_total 2' "$TMP/m/unde-shard-replay.prom"
	# §14 "INSERT … + enrichment backfill": the backfill really enriches them
	run --separate-stderr env -u COHERE_API_KEY unde-embed --pending --url "$UNDE_T_BSHARD"
	assert_success
	assert_jq -s '[.[] | select(.message_id == "'$m2'" or .message_id == "'$m3'")] | length == 2'
	run psql -XAtq "$UNDE_T_BSHARD" -c "select role, needs_enrichment, embedding is not null, embedding_model,
		memory_snippet is not null, coalesce(response_description, '') like '%ZA-77%'
		from messages where id in ('$m2', '$m3') order by role desc"
	assert_output "user|f|t|local-ngram-v1|t|f
assistant|f|f||f|t"
	# and the embedded one is findable by the search the orchestrator runs
	q=$(env -u COHERE_API_KEY unde-embed <<<'{"text":"linen shirt size M"}' 2>/dev/null | jq -c '{embedding, embedding_model}')
	run --separate-stderr unde-shard search --url "$UNDE_T_BSHARD" <<<'{"user_id":"'$u'","query_embedding":'"$(jq -c .embedding <<<"$q")"',"query_model":'"$(jq -c .embedding_model <<<"$q")"'}'
	assert_success
	assert_output --partial "$m2"
}

@test "POST /verify-and-replay limits each user to REPLAY_PAIRS_PER_SECOND pairs and a message to REPLAY_MAX_TRIES replays; a refused replay stores nothing" {
	_backup_env
	u=$(uuid) v=$(uuid) a1=$(uuid) a2=$(uuid) b1=$(uuid) b2=$(uuid) c1=$(uuid) c2=$(uuid)
	_turn "$u" "$(uuid)" "before the failover"
	_turn "$v" "$(uuid)" "another user"
	conv=$(psql -XAtq "$UNDE_T_BSHARD" -c "select id from conversations where user_id = '$u'")
	# a refill of one pair per 1000 s: no pair comes back while the test runs
	_replay_httpd -E REPLAY_PAIRS_PER_SECOND=0.001 -E REPLAY_BURST_PAIRS=3
	req() { echo '{"conversation_id":"'$conv'","user_id":"'$u'","unconfirmed":['"$1"']}'; }
	# three tries of a pair pass (each takes a pair from the bucket: 3 → 0)…
	for i in 1 2 3; do
		_post "$(req "$(_pair "$a1" "$a2")")"
		assert_line --index 1 200
	done
	# …the fourth is refused as too many tries (before the bucket is asked)
	_post "$(req "$(_pair "$a1" "$a2")")"
	assert_line --index 1 400
	jq_e '.error.code == "too_many_tries"' <<<"${lines[0]}"
	# the bucket is empty: a new pair must wait, and is not stored
	_post "$(req "$(_pair "$b1" "$b2")")"
	assert_line --index 1 503
	jq_e '.error.code == "rate_limited" and (.error.message | test("retry in [0-9]+ s"))' <<<"${lines[0]}"
	run psql -XAtq "$UNDE_T_BSHARD" -c "select count(*) from messages where id in ('$b1', '$b2')"
	assert_output 0
	# more pairs in one request than the burst are refused outright
	_post "$(req "$(_pair "$(uuid)" "$(uuid)"),$(_pair "$(uuid)" "$(uuid)"),$(_pair "$(uuid)" "$(uuid)"),$(_pair "$(uuid)" "$(uuid)")")"
	assert_line --index 1 400
	jq_e '.error.code == "too_many_pairs"' <<<"${lines[0]}"
	# another user has a bucket of their own, found from the conversation alone
	vconv=$(psql -XAtq "$UNDE_T_BSHARD" -c "select id from conversations where user_id = '$v'")
	_post '{"conversation_id":"'$vconv'","unconfirmed":['"$(_pair "$c1" "$c2")"']}'
	assert_line --index 1 200
	_replay_stop 7
	grep -qx 'replay_requests_total 7' "$TMP/m/unde-shard-replay.prom"
	# the command line (an operator's replay of a client's dump) is not limited
	for i in 1 2 3 4; do
		run --separate-stderr unde-shard replay <<<"$(req "$(_pair "$b1" "$b2")")"
		assert_success
	done
	# the limit's state goes with the user
	unde-shard erase --user "$u" >/dev/null 2>&1
	run psql -XAtq "$UNDE_T_BSHARD" -c "select (select count(*) from replay_rate where user_id = '$u') + (select count(*) from replay_tries where user_id = '$u')"
	assert_output 0
}

@test "pgbackrest: a full then a differential backup of a real server, with the full's age as a metric" {
	[[ $(id -u) = 0 ]] || skip "needs root (pgBackRest runs as postgres)"
	command -v pgbackrest >/dev/null || skip "pgbackrest not installed"
	_backup_env
	cat >"$BK/pgbackrest.conf" <<-CONF
		[global]
		repo1-path=$BK/repo
		repo1-retention-full=4
		repo1-retention-diff=7
		compress-type=lz4
		start-fast=y
		log-path=$BK
		lock-path=$BK/lock
		log-level-file=off
		[t]
		pg1-path=$PGTEST_DIR/data
		pg1-port=$PGPORT
		pg1-socket-path=$PGTEST_DIR
	CONF
	chown postgres: "$BK/pgbackrest.conf"
	psql -XAtq -d postgres -c "alter system set archive_mode = on" \
		-c "alter system set archive_command = 'pgbackrest --config=$BK/pgbackrest.conf --stanza=t archive-push %p'"
	_pg_as_owner "$PG_BINDIR/pg_ctl" restart -w -t 60 -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -o "-p $PGPORT" >/dev/null
	_pg_as_owner pgbackrest --config="$BK/pgbackrest.conf" --stanza=t stanza-create >/dev/null 2>&1
	UNDE_METRICS_DIR=$TMP/m run --separate-stderr unde-cluster backup pgbackrest --stanza t --type full --config "$BK/pgbackrest.conf"
	assert_success
	assert_jq '.backup.kind == "pgbackrest" and .backup.type == "full" and .backup.full_kept == 1'
	UNDE_METRICS_DIR=$TMP/m run --separate-stderr unde-cluster backup pgbackrest --stanza t --type diff --config "$BK/pgbackrest.conf"
	assert_success
	assert_jq '.backup.type == "diff" and .backup.diff_kept == 1'
	grep -Eq '^pgbackrest_last_full_age_hours\{stanza="t"\} 0\.0[0-9]*$|^pgbackrest_last_full_age_hours\{stanza="t"\} 0$' "$TMP/m/unde-backup.prom"
	run --separate-stderr unde-cluster backup pgbackrest --stanza nosuch --type full --config "$BK/pgbackrest.conf"
	assert_failure 69
	assert_stderr_error_code backup_failed
	psql -XAtq -d postgres -c "alter system reset archive_mode" -c "alter system reset archive_command"
	_pg_as_owner "$PG_BINDIR/pg_ctl" restart -w -t 60 -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -o "-p $PGPORT" >/dev/null
}

@test "object storage: a basebackup goes to s3://, is pruned there, restores from there; WAL segments push and fetch" {
	command -v "${MOTO_SERVER:-moto_server}" >/dev/null || skip "moto not installed"
	_backup_env
	moto_start
	u=$(uuid) m=$(uuid)
	_turn "$u" "$m" "kept in object storage"
	repo=s3://$S3_BUCKET/shard-0/base
	run --separate-stderr unde-cluster backup basebackup --source "$PGTEST_URL_BASE/postgres" --repo "$repo"
	assert_success
	assert_jq --slurp '.[0].backup.repo == "'$repo'" and .[1].pruned.kept == 1'
	sleep 1.1 # a second name
	run --separate-stderr unde-cluster backup basebackup --source "$PGTEST_URL_BASE/postgres" --repo "$repo"
	assert_success
	# both on one day: the day's newest is kept
	run moto_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix shard-0 --output json
	assert_success
	assert_jq '[.Contents[].Key | select(startswith("shard-0/base/")) | split("/")[2]] | unique | length == 1'
	assert_jq '[.Contents[].Key | select(endswith("/backup.json"))] | length == 1' 
	port=$(_free_port)
	run --separate-stderr unde-cluster restore --from basebackup --repo "$repo" --data "$BK/r4" --port "$port" \
		--db "${UNDE_T_BSHARD##*/}"
	assert_success
	run psql -XAtq "postgresql://postgres@127.0.0.1:$port/${UNDE_T_BSHARD##*/}" -c "select content from messages where id = '$m'"
	assert_output 'kept in object storage'
	# archive_command / restore_command
	head -c 65536 /dev/urandom >"$TMP/seg"
	SHARD_WAL_ARCHIVE=s3://$S3_BUCKET/shard-0/wal run --separate-stderr unde-cluster wal-push "$TMP/seg" 000000010000000000000042
	assert_success
	SHARD_WAL_ARCHIVE=s3://$S3_BUCKET/shard-0/wal run --separate-stderr unde-cluster wal-push "$TMP/seg" 000000010000000000000042
	assert_success
	head -c 65536 /dev/urandom >"$TMP/other"
	SHARD_WAL_ARCHIVE=s3://$S3_BUCKET/shard-0/wal run --separate-stderr unde-cluster wal-push "$TMP/other" 000000010000000000000042
	assert_failure 73
	SHARD_WAL_ARCHIVE=s3://$S3_BUCKET/shard-0/wal run unde-cluster wal-fetch 000000010000000000000042 "$TMP/back"
	assert_success
	cmp "$TMP/seg" "$TMP/back"
	SHARD_WAL_ARCHIVE=s3://$S3_BUCKET/shard-0/wal run unde-cluster wal-fetch 000000010000000000000099 "$TMP/none"
	assert_failure 1
	moto_stop
}
