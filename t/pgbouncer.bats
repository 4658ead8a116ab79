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
	jq_e '[.user_knowledge[].data.max] | index(304) != null' <<<"$output"
}

# pg_conf_value FILE NAME — NAME's value as PostgreSQL 15 reads it with
# FILE included after the test cluster's own postgresql.conf; fails when
# the server refuses any line of FILE.
pg_conf_value() {
	local d=$PGTEST_DIR/conf-check
	mkdir -p "$d"
	cp "$1" "$d/under-test.conf"
	printf "include '%s'\ninclude '%s'\n" "$PGTEST_DIR/data/postgresql.conf" "$d/under-test.conf" >"$d/main.conf"
	[ "$(id -u)" -ne 0 ] || chown -R postgres: "$d"
	_pg_as_owner "$PG_BINDIR/postgres" --config-file="$d/main.conf" -D "$PGTEST_DIR/data" -C "$2"
}

@test "PostgreSQL 15 accepts the staging and shard-primary settings of sections 6 and 14" {
	run pg_conf_value "$UNDE_TOP_SRCDIR/etc/postgresql/staging.conf" wal_level
	assert_success
	assert_output minimal
	run pg_conf_value "$UNDE_TOP_SRCDIR/etc/postgresql/staging.conf" shared_buffers
	assert_output 131072 # 1GB in 8 kB pages
	run pg_conf_value "$UNDE_TOP_SRCDIR/etc/postgresql/shard-primary.conf" wal_keep_size
	assert_success
	assert_output 8192
	run pg_conf_value "$UNDE_TOP_SRCDIR/etc/postgresql/shard-primary.conf" random_page_cost
	assert_output 0.01
	# and the check itself refuses what PostgreSQL does not know
	printf 'no_such_setting = 1\n' >"$BATS_TEST_TMPDIR/bad.conf"
	run pg_conf_value "$BATS_TEST_TMPDIR/bad.conf" wal_level
	assert_failure
}

@test "section 6's pgbouncer.ini pools in transaction mode and authenticates roles by SCRAM" {
	pg_createdb unde_staging >/dev/null
	unde-db migrate staging --url "$PGTEST_URL_BASE/unde_staging" >/dev/null 2>&1
	psql -XAtq -v ON_ERROR_STOP=1 -d unde_staging -f "$UNDE_TOP_SRCDIR/sql/roles/staging.sql" >/dev/null
	psql -XAtq -d unde_staging -c "SET password_encryption = 'scram-sha-256'; ALTER ROLE downloader PASSWORD 'dl-secret'"
	d=$(mktemp -d /tmp/unde-pgb6.XXXXXX)
	psql -XAtq -d unde_staging -c "select format('\"%s\" \"%s\"', rolname, rolpassword) from pg_authid where rolname = 'downloader'" >"$d/userlist.txt"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	sed -e "s|^listen_addr = .*|listen_addr = 127.0.0.1|" -e "s|^listen_port = .*|listen_port = $port|" \
		-e "s|^auth_file = .*|auth_file = $d/userlist.txt|" -e "s|^logfile = .*|logfile = $d/log|" \
		-e "s|^pidfile = .*|pidfile = $d/pid|" -e "s|^unix_socket_dir = .*|unix_socket_dir =|" \
		-e "s|host=127.0.0.1 port=5432|host=127.0.0.1 port=$PGPORT|" \
		"$UNDE_TOP_SRCDIR/etc/pgbouncer/pgbouncer.ini" >"$d/pgbouncer.ini"
	grep -qx 'pool_mode = transaction' "$d/pgbouncer.ini"
	grep -qx 'auth_type = scram-sha-256' "$d/pgbouncer.ini"
	[ "$(id -u)" -ne 0 ] || chown -R postgres: "$d"
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$PGBOUNCER" -d "$d/pgbouncer.ini"; else "$PGBOUNCER" -d "$d/pgbouncer.ini"; fi
	url="postgresql://downloader@127.0.0.1:$port/unde_staging"
	ok=
	for _ in $(seq 300); do
		if PGPASSWORD=dl-secret psql -XAtq "$url" -c 'select 1' >/dev/null 2>&1; then ok=1; break; fi
		sleep 0.1
	done
	PGPASSWORD=wrong psql -XAtq "$url" -c 'select 1' >"$d/wrong.out" 2>&1 && wrong=accepted || wrong=refused
	PGPASSWORD=dl-secret psql -XAtq "$url" -c "UPDATE raw_products SET name = 'x'" >"$d/grant.out" 2>&1 && grant=accepted || grant=refused
	kill "$(cat "$d/pid")" 2>/dev/null || true
	for _ in $(seq 100); do [ -f "$d/pid" ] || break; sleep 0.05; done
	rm -rf "$d"
	[ -n "$ok" ] || fail "could not connect through pgbouncer with the right password"
	assert_equal "$wrong" refused
	assert_equal "$grant" refused
}

@test "six concurrent unde-shard search processes through pgbouncer all succeed" {
	# Server connections are shared by the six (pool of 2): a named prepared
	# statement left on one by a search would make the next client's
	# "already exists" (409 of 1,200 failed before).
	export PRODUCTION_DB_URL=$PGB_URL_BASE/production SHARD_0_DB_URL=$PGB_URL_BASE/shard0
	user=$(uuid)
	for i in 1 2 3; do
		printf '{"user_id":"%s","messages":[{"id":"%s","role":"user","content":"balenciaga sneakers %s"}]}\n' \
			"$user" "$(uuid)" "$i"
	done | timeout 60 unde-shard save >/dev/null 2>&1
	q='{"user_id":"'"$user"'","query":"balenciaga"}'
	for p in 1 2 3 4 5 6; do
		for i in $(seq 40); do echo "$q"; done >"$BATS_TEST_TMPDIR/q$p"
	done
	for p in 1 2 3 4 5; do
		(for i in 1 2 3 4 5; do timeout 120 unde-shard search <"$BATS_TEST_TMPDIR/q$p" || echo "exit $?"; done) \
			>"$BATS_TEST_TMPDIR/out$p" 2>"$BATS_TEST_TMPDIR/err$p" &
	done
	(for i in 1 2 3 4 5; do timeout 120 unde-shard search <"$BATS_TEST_TMPDIR/q6" || echo "exit $?"; done) \
		>"$BATS_TEST_TMPDIR/out6" 2>"$BATS_TEST_TMPDIR/err6"
	wait
	# 6 processes x 5 runs x 40 searches, each answered with its 3 episodes
	assert_equal "$(cat "$BATS_TEST_TMPDIR"/out? | jq -c 'select(.episodes | length == 3)' | wc -l)" 1200
	run grep -h '^exit\|already exists' "$BATS_TEST_TMPDIR"/out? "$BATS_TEST_TMPDIR"/err?
	assert_failure
}
