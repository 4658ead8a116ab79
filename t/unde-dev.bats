#!/usr/bin/env bats
# t/unde-dev.bats — the local environment: a private cluster with the three
# databases migrated, the env lines that point at it, status, down.
#
# One environment is brought up for the whole file (about 1.5 s) in a
# throwaway root under /tmp on a free port of its own; the tests run in file
# order and the last ones take it down.

load lib/common

setup_file() {
	# The postgres user must be able to enter the root: bats' own temp
	# directories are mode 700 root, unde_tmpdir's are 755 under /tmp.
	UNDE_DEV_TEST_DIR=$(unde_tmpdir)
	export UNDE_DEV_TEST_DIR
	UNDE_DEV_PGPORT=$(unde_free_port)
	export UNDE_DEV_PGPORT
	export R=$UNDE_DEV_TEST_DIR/env
	# unde-dev finds unde-db in the build's src/ (a VPATH build says where).
	export UNDE_BUILD_DIR=$UNDE_TOP_BUILDDIR
	[ -x "$UNDE_BUILD_DIR/src/unde-db" ] || skip "src/unde-db is not built"
	unde-dev --root "$R" up >"$UNDE_DEV_TEST_DIR/up1.out" 2>"$UNDE_DEV_TEST_DIR/up1.err"
}

teardown_file() {
	# Whatever happened, leave no cluster behind, and only ours: stopped by
	# its data directory.
	local root
	if [ -n "${UNDE_DEV_TEST_DIR:-}" ] && [ -d "$UNDE_DEV_TEST_DIR" ]; then
		for root in "$UNDE_DEV_TEST_DIR"/*/; do
			[ -d "$root/pg" ] || continue
			unde-dev --root "${root%/}" down >/dev/null 2>&1 || true
			if [ -r "$root/socket-dir" ]; then rm -rf -- "$(cat "$root/socket-dir")"; fi
		done
	fi
	unde_teardown_file
}

# sql DB QUERY — one value from the environment's database DB.
sql() {
	psql -X -At "postgresql://postgres@127.0.0.1:$UNDE_DEV_PGPORT/$1" -c "$2"
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr unde-dev --help
	assert_success
	assert_output --partial 'usage: unde-dev [--root DIR] up|down|status|env'
	[ -z "$stderr" ]
	run unde-dev --version
	assert_output 'unde-dev 0.1.0'
}

@test "an unknown command or option is a usage error" {
	run unde-dev --root "$R" start
	assert_equal "$status" 64
	run unde-dev --bogus status
	assert_equal "$status" 64
	run unde-dev
	assert_equal "$status" 64
	run unde-dev --root '/tmp/has space' status
	assert_equal "$status" 64
}

@test "up creates the three databases with their migrations applied" {
	grep -q 'up at' "$UNDE_DEV_TEST_DIR/up1.out"
	for db in unde_staging unde_production unde_shard_0; do
		n=$(sql "$db" 'SELECT count(*) FROM schema_migrations')
		[ "$n" -ge 1 ]
		# Every migration file of the database's kind is recorded as applied.
		case $db in
		unde_staging) kind=staging ;;
		unde_production) kind=production ;;
		unde_shard_0) kind=shard ;;
		esac
		files=("$UNDE_TOP_SRCDIR/sql/$kind/"*.sql)
		assert_equal "$n" "${#files[@]}"
	done
}

@test "up installs pgvector in the production and shard databases" {
	assert_equal "$(sql unde_production "SELECT count(*) FROM pg_extension WHERE extname = 'vector'")" 1
	assert_equal "$(sql unde_shard_0 "SELECT count(*) FROM pg_extension WHERE extname = 'vector'")" 1
}

@test "up creates the object store, metrics and lock directories" {
	[ -d "$R/objects" ]
	[ -d "$R/metrics" ]
	[ -d "$R/lock" ]
}

@test "the cluster listens only on 127.0.0.1 and a socket under the root" {
	assert_equal "$(sql postgres 'SHOW listen_addresses')" 127.0.0.1
	assert_equal "$(sql postgres 'SHOW unix_socket_directories')" "$R/run"
	[ -S "$R/run/.s.PGSQL.$UNDE_DEV_PGPORT" ]
}

@test "a second up leaves the running cluster alone and succeeds" {
	pid=$(head -n 1 "$R/pg/postmaster.pid")
	run --separate-stderr unde-dev --root "$R" up
	assert_success
	assert_output --partial 'up at'
	[[ $stderr == *'"msg":"cluster already running"'* ]]
	# Same postmaster: nothing was restarted or re-initialised.
	assert_equal "$(head -n 1 "$R/pg/postmaster.pid")" "$pid"
	files=("$UNDE_TOP_SRCDIR/sql/staging/"*.sql)
	assert_equal "$(sql unde_staging 'SELECT count(*) FROM schema_migrations')" "${#files[@]}"
}

@test "status says running, lists the databases and exits 0" {
	run unde-dev --root "$R" status
	assert_success
	assert_output --partial 'running'
	assert_output --partial "port: $UNDE_DEV_PGPORT"
	assert_output --partial 'unde_production unde_shard_0 unde_staging'
}

@test "env output evaluates and points psql at the local databases" {
	run --separate-stderr unde-dev --root "$R" env
	assert_success
	eval "$output"
	assert_equal "$STAGING_DB_URL" "postgresql://postgres@127.0.0.1:$UNDE_DEV_PGPORT/unde_staging"
	run psql -X -At "$STAGING_DB_URL" -c 'select 1'
	assert_success
	assert_output 1
	assert_equal "$(psql -X -At "$PRODUCTION_DB_URL" -c 'select current_database()')" unde_production
	assert_equal "$(psql -X -At "$SHARD_0_DB_URL" -c 'select current_database()')" unde_shard_0
	assert_equal "$S3_ENDPOINT" "file://$R/objects"
	assert_equal "$S3_BUCKET" unde-images
	assert_equal "$UNDE_METRICS_DIR" "$R/metrics"
	assert_equal "$UNDE_LOCK_DIR" "$R/lock"
	# The build's commands come first on PATH.
	assert_equal "$(command -v unde-job)" "$(cd "$UNDE_TOP_SRCDIR" && pwd -P)/bin/unde-job"
	assert_equal "$(command -v unde-db)" "$UNDE_BUILD_DIR/src/unde-db"
}

@test "env output also evaluates in a POSIX sh" {
	run sh -c 'eval "$(unde-dev --root "$1" env 2>/dev/null)" && psql -X -At "$SHARD_0_DB_URL" -c "select 2"' sh "$R"
	assert_success
	assert_output 2
}

@test "down stops the cluster and status then says down with exit 3" {
	pid=$(head -n 1 "$R/pg/postmaster.pid")
	run unde-dev --root "$R" down
	assert_success
	# The postmaster is gone (or a zombie its reaper has not collected yet).
	state=$(ps -o stat= -p "$pid" || true)
	[[ -z $state || $state == Z* ]]
	[ ! -e "$R/pg/postmaster.pid" ]
	run unde-dev --root "$R" status
	assert_equal "$status" 3
	assert_output --partial 'not running'
	run psql -X -At "postgresql://postgres@127.0.0.1:$UNDE_DEV_PGPORT/postgres" -c 'select 1'
	assert_failure
}

@test "down when already down succeeds and does nothing" {
	run unde-dev --root "$R" down
	assert_success
	assert_output --partial 'not running'
}

@test "up after down starts the same cluster again with its data" {
	run unde-dev --root "$R" up
	assert_success
	sql unde_staging 'SELECT count(*) FROM schema_migrations' >/dev/null
	run unde-dev --root "$R" down
	assert_success
}

@test "a root too deep for a unix socket path puts the socket under /tmp" {
	deep=$UNDE_DEV_TEST_DIR/$(printf 'd%.0s' $(seq 90))
	port=$(unde_free_port)
	UNDE_DEV_PGPORT=$port run unde-dev --root "$deep" up
	assert_success
	sockdir=$(cat "$deep/socket-dir")
	[[ $sockdir == /tmp/* ]]
	[ -S "$sockdir/.s.PGSQL.$port" ]
	assert_equal "$(psql -X -At "postgresql://postgres@127.0.0.1:$port/postgres" -c 'SHOW unix_socket_directories')" "$sockdir"
	UNDE_DEV_PGPORT=$port run unde-dev --root "$deep" down
	assert_success
	rm -rf -- "$sockdir"
}
