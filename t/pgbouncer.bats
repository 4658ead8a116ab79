#!/usr/bin/env bats
# The database paths through a real PgBouncer in transaction pooling mode
# (spec §6: every URL goes through port 6432, pool_mode = transaction), where
# consecutive transactions of one client may land on different server
# connections and session state stays behind on the one it was left on.

load lib/common
load lib/pg
load lib/pgbouncer

setup_file() {
	pg_start
	pgb_start
	for db in staging production shard0 mig_a mig_b; do pg_createdb "$db" >/dev/null; done
}

teardown_file() {
	pgb_stop
	pg_stop
	unde_teardown_file
}

uuid() { cat /proc/sys/kernel/random/uuid; }

# Advisory locks held by any backend of the cluster (checked directly, not
# through the pooler).
advisory_locks() { psql -XAtq -d postgres -c "select count(*) from pg_locks where locktype = 'advisory'"; }

@test "four concurrent migrations through pgbouncer apply each file once and leave no lock behind" {
	url=$PGB_URL_BASE/mig_a
	for i in 1 2 3; do
		timeout 120 unde-db migrate shard --url "$url" >"$BATS_TEST_TMPDIR/m$i" 2>"$BATS_TEST_TMPDIR/e$i" &
	done
	timeout 120 unde-db migrate shard --url "$url" >"$BATS_TEST_TMPDIR/m4" 2>"$BATS_TEST_TMPDIR/e4"
	wait
	n=$(ls "$UNDE_TOP_SRCDIR"/sql/shard/*.sql | wc -l)
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/m? | grep -c '"applied now"')" "$n"
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/m? | grep -c '"status"')" "$((4 * n))"
	assert_equal "$(psql -XAtq -d mig_a -c 'select count(*) from schema_migrations')" "$n"
	assert_equal "$(advisory_locks)" 0
}

@test "a migration after another one through the same pool does not hang" {
	# The old session lock stayed on the pooled server connection after the
	# first client left; the next client of that connection then waited on
	# a lock nobody would release.
	dir=$(unde_tmpdir)
	cp -r "$UNDE_TOP_SRCDIR/sql/staging" "$dir/"
	timeout 120 unde-db migrate staging --url "$PGB_URL_BASE/mig_b" --sql-dir "$dir" >/dev/null
	run --separate-stderr timeout 120 unde-db migrate staging --url "$PGB_URL_BASE/mig_b" --sql-dir "$dir"
	assert_success
	refute_output --partial '"applied now"'
	printf 'CREATE TABLE later_one (id bigint);\n' >"$dir/staging/0099_later_one.sql"
	run --separate-stderr timeout 120 unde-db migrate staging --url "$PGB_URL_BASE/mig_b" --sql-dir "$dir"
	assert_success
	assert_output --partial '"version":"0099","name":"later_one","status":"applied now"'
	assert_equal "$(advisory_locks)" 0
}

@test "all three databases migrate through pgbouncer and report their status" {
	timeout 120 unde-db migrate staging --url "$PGB_URL_BASE/staging" >/dev/null
	timeout 120 unde-db migrate production --url "$PGB_URL_BASE/production" >/dev/null
	timeout 120 unde-db migrate shard --url "$PGB_URL_BASE/shard0" >/dev/null
	STAGING_DB_URL=$PGB_URL_BASE/staging PRODUCTION_DB_URL=$PGB_URL_BASE/production \
		SHARD_0_DB_URL=$PGB_URL_BASE/shard0 run --separate-stderr timeout 60 unde-db status
	assert_success
	refute_output --partial '"pending"'
	assert_output --partial '"db":"shard"'
}

@test "unde-shard saves and reads knowledge through pgbouncer" {
	export PRODUCTION_DB_URL=$PGB_URL_BASE/production SHARD_0_DB_URL=$PGB_URL_BASE/shard0
	export MASTER_ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
	user=$(uuid)
	for i in 1 2 3; do
		printf '{"user_id":"%s","messages":[{"id":"%s","role":"user","content":"balenciaga sneakers %s"}]}\n' \
			"$user" "$(uuid)" "$i"
	done | timeout 60 unde-shard save >/dev/null
	assert_equal "$(psql -XAtq -d shard0 -c "select count(*) from messages m join conversations c on c.id = m.conversation_id where c.user_id = '$user'")" 3
	for i in 1 2 3 4; do
		echo '{"user_id":"'"$user"'","knowledge_type":"budget","data":{"max":'$((300 + i))'}}' |
			timeout 60 unde-shard knowledge put >/dev/null
		run --separate-stderr timeout 60 unde-shard knowledge get <<<'{"user_id":"'"$user"'"}'
		[ "$status" -eq 0 ] || fail "knowledge get $i failed ($status): $stderr"
	done
	jq -e '[.user_knowledge[].data.max] | index(304) != null' <<<"$output"
}
