#!/usr/bin/env bats
# t/pg-helper.bats — proves t/lib/pg.bash: each test file gets its own
# PostgreSQL 15 + pgvector, reachable by socket and by URL, and pg_stop
# leaves nothing behind.

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load
load lib/pg

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

# A test that starts a second cluster records it in inner_dir; stop it even
# if the test failed half-way.
teardown() {
	if [ -n "${inner_dir:-}" ]; then
		PGTEST_DIR=$inner_dir pg_stop
	fi
}

@test "pg_start leaves a running cluster in its own directory under /tmp" {
	assert_regex "$PGTEST_DIR" '^/tmp/unde-pg\.[A-Za-z0-9]{6}$'
	assert [ -d "$PGTEST_DIR/data" ]
	run "$PG_BINDIR/pg_isready" -h "$PGHOST" -p "$PGPORT"
	assert_success
}

@test "the cluster listens on a port below the ephemeral range and psql reaches it with no options" {
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	assert [ "$PGPORT" -ge 10000 ]
	assert [ "$PGPORT" -lt "$lo" ]
	run "$PG_BINDIR/psql" -X -At -c 'SHOW port'
	assert_success
	assert_output "$PGPORT"
}

@test "the cluster runs as a throwaway: fsync, synchronous_commit and full_page_writes are off" {
	run "$PG_BINDIR/psql" -X -At -c "SELECT string_agg(setting, ',' ORDER BY name) FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
	assert_success
	assert_output "off,off,off"
}

@test "pg_createdb prints a URL that connects over TCP to the new database" {
	run pg_createdb helper_url
	assert_success
	assert_output "postgresql://postgres@127.0.0.1:$PGPORT/helper_url"
	run "$PG_BINDIR/psql" -X -At "$output" -c 'SELECT current_database(), inet_server_addr()'
	assert_success
	assert_output "helper_url|127.0.0.1"
}

@test "pg_createdb refuses a name that would not fit in a URL" {
	run pg_createdb 'bad name/x'
	assert_failure
	assert_output --partial "bad database name"
}

@test "the database is UTF8 with the C.UTF-8 locale" {
	run "$PG_BINDIR/psql" -X -At -c "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = 'postgres'"
	assert_success
	assert_output "UTF8|C.UTF-8"
}

@test "CREATE EXTENSION vector works and cosine distance of orthogonal vectors is 1" {
	url=$(pg_createdb helper_vector)
	run "$PG_BINDIR/psql" -X -At -v ON_ERROR_STOP=1 "$url" \
		-c 'CREATE EXTENSION vector' \
		-c "SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector, '[3,4]'::vector <-> '[0,0]'::vector"
	assert_success
	assert_output "CREATE EXTENSION
1|5"
}

@test "pg_stop stops the server, leaves no process behind and removes the directory" {
	# A second cluster, started and stopped inside this test, so the file's
	# own cluster stays up for the other tests.
	local outer_dir=$PGTEST_DIR outer_port=$PGPORT
	pg_start
	inner_dir=$PGTEST_DIR
	local dir=$PGTEST_DIR port=$PGPORT
	assert [ "$dir" != "$outer_dir" ]
	assert [ "$port" != "$outer_port" ]
	run pgrep -f "$dir"
	assert_success

	pg_stop
	run pgrep -f "$dir"
	assert_failure
	assert [ ! -e "$dir" ]
	run "$PG_BINDIR/pg_isready" -h 127.0.0.1 -p "$port"
	assert_failure

	# The file's cluster is untouched.
	run "$PG_BINDIR/pg_isready" -h "$outer_dir" -p "$outer_port"
	assert_success
}

@test "pg_start moves to another port when the one it picked is taken" {
	# Force the first pick onto this file's own cluster's port, and skip the
	# pre-check, so the new postmaster really fails to bind and must retry.
	# set -e and a plain call, as in setup_file.
	run bash -c '
		set -eu
		source "$1"; taken=$2; flag=$3
		_pg_port_taken() { return 1; }
		_pg_random_port() {
			if [ -e "$flag" ]; then unde_port_candidate
			else : >"$flag"; echo "$taken"; fi
		}
		trap pg_stop EXIT
		pg_start
		echo "port=$PGPORT"
		"$PG_BINDIR/psql" -X -At -c "SELECT '"'"'answered'"'"'"
	' _ "$BATS_TEST_DIRNAME/lib/pg.bash" "$PGPORT" "$BATS_TEST_TMPDIR/picked"
	assert_success
	assert [ -e "$BATS_TEST_TMPDIR/picked" ]
	refute_line "port=$PGPORT"
	assert_line --regexp '^port=[0-9]+$'
	assert_line "answered"
}

@test "a cluster whose bats process was killed is stopped and removed by the watchdog" {
	# Stand-in for bats: a shell that starts a cluster, then dies by SIGKILL
	# without running any teardown.
	run bash -c 'set -eu; source "$1"; BATS_ROOT_PID=$$; pg_start; echo "$PGTEST_DIR"; kill -KILL $$' \
		_ "$BATS_TEST_DIRNAME/lib/pg.bash"
	inner_dir=$output
	assert_regex "$inner_dir" '^/tmp/unde-pg\.'

	# The watchdog polls once a second; allow it 15 s.
	for _ in $(seq 150); do
		[ -e "$inner_dir" ] || break
		sleep 0.1
	done
	assert [ ! -e "$inner_dir" ]
	run pgrep -f "$inner_dir"
	assert_failure
}

@test "pg_stop cleans up under set -e even when the server had already died" {
	run bash -c '
		set -eu
		source "$1"
		pg_start
		echo "$PGTEST_DIR"
		pid=$(head -n 1 "$PGTEST_DIR/data/postmaster.pid")
		kill -KILL "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
		pg_stop
		echo stopped
	' _ "$BATS_TEST_DIRNAME/lib/pg.bash"
	inner_dir=${lines[0]}
	assert_success
	assert_line stopped
	assert [ ! -e "$inner_dir" ]
}

@test "pg_stop is harmless when called again or with no cluster" {
	run bash -c 'set -eu; source "$1"; unset PGTEST_DIR; pg_stop; PGTEST_DIR=/tmp/unde-pg.gone pg_stop; echo done' _ "$BATS_TEST_DIRNAME/lib/pg.bash"
	assert_success
	assert_output "done"
}
