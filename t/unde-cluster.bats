#!/usr/bin/env bats
# unde-cluster: the shard's Patroni + etcd cluster — generated configs, a
# loopback cluster, failover followed by the shard client with
# verify-and-replay, and the manual failback.

# read before common.bash scrubs UNDE_*; setup_file exports it for the tests
UNDE_T_DRILLS=${UNDE_T_DRILLS:-${UNDE_DRILLS:-}}
load lib/common
load lib/ha

uuid() { cat /proc/sys/kernel/random/uuid; }

setup_file() {
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
	unde_teardown_file
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
	run unde-cluster check --state-dir "$TMP/state"
	assert_success
	assert_jq '.leader == "n1" and .replica_up == 1 and .etcd_server_has_leader == 1 and .healthy'
	psql -XAtq "$UNDE_T_DB" -c "create table if not exists probe(x int); insert into probe values (1)"
	ha_wait_replica_streaming 60
	run psql -XAtq "${UNDE_CLUSTER_N2_URL%/postgres}/shard0" -c "select count(*) from probe"
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
	jq -e '.max_ack_gap_seconds < 30' <<<"$summary"
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
	# replayed rows wait for the enrichment backfill
	pending=$(psql -XAtq "$UNDE_T_DB" -c "select count(*) from messages where needs_enrichment")
	[ "$pending" -ge "$replayed" ]
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
	ha_wait_replica_streaming 180
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

@test "drill: check writes the cluster's metrics for the textfile collector" {
	ha_skip_unless_drills "$UNDE_T_DRILLS"
	ha_wait_replica_streaming 180
	UNDE_METRICS_DIR=$TMP/m run unde-cluster check --state-dir "$TMP/state"
	assert_success
	grep -qx 'replica_up 1' "$TMP/m/unde-cluster.prom"
	grep -qx 'etcd_server_has_leader 1' "$TMP/m/unde-cluster.prom"
	grep -qx 'patroni_replica_lag_bytes 0' "$TMP/m/unde-cluster.prom"
}
