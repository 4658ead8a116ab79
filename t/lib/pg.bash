# t/lib/pg.bash — a throwaway PostgreSQL 15 + pgvector for one bats file.
#
# Usage, in a .bats file:
#
#   load lib/pg
#   setup_file()    { pg_start; }
#   teardown_file() { pg_stop; }
#   @test "..." { url=$(pg_createdb mydb); ...; }
#
# pg_start exports PGHOST (the cluster's socket directory), PGPORT,
# PGUSER=postgres, PGTEST_DIR and PGTEST_URL_BASE, so plain `psql`,
# `psql -d NAME` and "$PGTEST_URL_BASE/NAME" (TCP on 127.0.0.1) all reach the
# cluster. Every cluster lives in its own directory under /tmp and on its own
# random port, so several bats files can run at once (make check -j2).
#
# It runs as root too: initdb and postgres refuse root, so the server runs as
# the postgres user, in a directory under /tmp it owns (bats' own temp
# directories are mode 700 root and the postgres user cannot enter them).

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

# Run a server-side command as the cluster's owner: the postgres user when we
# are root, ourselves otherwise.
# _pg_detach CMD… — CMD without bats' descriptors (unde_detach), when
# t/lib/common.bash is loaded (benches source this file alone).
_pg_detach() {
	if declare -F unde_detach >/dev/null; then (unde_detach "$@"); else "$@"; fi
}

_pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# shellcheck source=t/lib/port.bash
source "$(dirname "${BASH_SOURCE[0]}")/port.bash"

# The port pickers pg_start and pgb_start use (t/pg-helper.bats replaces
# them to force a collision).
_pg_random_port() { unde_port_candidate; }
_pg_port_taken() { unde_port_taken "$1"; }

# Stop the cluster in $1 when process $2 (bats itself) is gone, so a run
# killed by a timeout or ^C, whose teardown_file never ran, leaves no
# postgres behind. Exits as soon as pg_stop has removed the directory. Its
# descriptors are closed so bats does not wait for it.
_pg_watchdog() {
	local dir=$1 pid=$2
	(
		trap '' HUP INT TERM
		! declare -F unde_close_fds >/dev/null || unde_close_fds
		while [ -d "$dir" ] && kill -0 "$pid" 2>/dev/null; do
			sleep 1
		done
		[ -d "$dir" ] && PGTEST_DIR=$dir pg_stop
	) </dev/null >/dev/null 2>&1 3>&- &
}

# pg_start — create, start and wait for a cluster; export its coordinates.
# Fails (status 1, reason on stderr) with nothing left running or on disk.
# Safe under bats' `set -e` (setup_file runs with it).
pg_start() {
	local dir data port

	if [ ! -x "$PG_BINDIR/initdb" ]; then
		echo "pg_start: no PostgreSQL binaries in $PG_BINDIR" >&2
		return 1
	fi

	dir=$(mktemp -d /tmp/unde-pg.XXXXXX) || return 1
	export PGTEST_DIR=$dir
	data=$dir/data
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir" || { pg_stop; return 1; }
	fi

	if ! _pg_as_owner "$PG_BINDIR/initdb" -D "$data" --auth=trust -U postgres \
		--locale=C.UTF-8 --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
		echo "pg_start: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		pg_stop
		return 1
	fi

	# Throwaway cluster: durability off. The socket stays inside $dir.
	cat >>"$data/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$dir'
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF

	# pg_ctl -w waits (up to 60 s: a loaded CI machine can take seconds)
	# until the server accepts connections, and returns at once when the
	# postmaster dies instead — as it does when the port turned out to be
	# taken between our check and its bind: then try another.
	local attempt
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		port=$(_pg_random_port)
		_pg_port_taken "$port" && continue

		rm -f "$dir/server.log"   # pg_ctl recreates it as the owner
		if _pg_detach _pg_as_owner "$PG_BINDIR/pg_ctl" start -w -t 60 -D "$data" \
			-l "$dir/server.log" -o "-p $port" >"$dir/pg_ctl.log" 2>&1; then
			export PGHOST=$dir PGPORT=$port PGUSER=postgres
			export PGTEST_URL_BASE="postgresql://postgres@127.0.0.1:$port"
			unset PGDATABASE PGSERVICE PGPASSWORD PGOPTIONS
			_pg_watchdog "$dir" "${BATS_ROOT_PID:-$$}"
			return 0
		fi
		# Make sure a half-started postmaster is gone before the next try.
		_pg_as_owner "$PG_BINDIR/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true

		if grep -q 'Address already in use' "$dir/server.log" 2>/dev/null; then
			continue
		fi
		echo "pg_start: server did not start on port $port:" >&2
		cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null
		pg_stop
		return 1
	done

	echo "pg_start: no free port found after $attempt attempts" >&2
	pg_stop
	return 1
}

# pg_createdb NAME — create database NAME; print its URL.
pg_createdb() {
	local name=${1:-}

	if [ -z "${PGTEST_DIR:-}" ] || [ -z "${PGPORT:-}" ]; then
		echo "pg_createdb: no cluster (call pg_start first)" >&2
		return 1
	fi
	case $name in
	'' | *[!A-Za-z0-9_-]*)
		echo "pg_createdb: bad database name '$name' (letters, digits, _ and - only)" >&2
		return 1
		;;
	esac
	"$PG_BINDIR/createdb" -h "$PGHOST" -p "$PGPORT" -U postgres "$name" || return 1
	echo "$PGTEST_URL_BASE/$name"
}

# pg_migrated_db NAME DATABASE — pg_createdb NAME, then unde-db migrate
# DATABASE (staging, production or shard) on it; print its URL.
pg_migrated_db() {
	local url
	url=$(pg_createdb "$1") || return 1
	unde-db migrate "$2" --url "$url" >/dev/null 2>&1 || {
		echo "pg_migrated_db: unde-db migrate $2 on $1 failed" >&2
		return 1
	}
	printf '%s\n' "$url"
}

# pg_shard_db NAME N — pg_createdb NAME, then unde-shard init --shard N on
# it (the shard schema; SHARD_N_DB_URL is the caller's to export); print its
# URL.
pg_shard_db() {
	local url
	url=$(pg_createdb "$1") || return 1
	unde-shard init --shard "$2" --url "$url" >/dev/null 2>&1 || {
		echo "pg_shard_db: unde-shard init --shard $2 on $1 failed" >&2
		return 1
	}
	printf '%s\n' "$url"
}

# pg_teardown_file — teardown_file of a file that started fakes and the
# cluster: every fake and unde_tmpdir directory, then the cluster.
pg_teardown_file() {
	unde_teardown_file
	pg_stop
}

# pg_stop — stop the cluster at once and remove its directory. Safe to call
# twice, or after a failed pg_start. Never leaves the postmaster running.
pg_stop() {
	local dir=${PGTEST_DIR:-} pid='' tries

	case $dir in
	/tmp/unde-pg.*) ;;
	*) return 0 ;;
	esac
	[ -d "$dir" ] || return 0

	if [ -f "$dir/data/postmaster.pid" ]; then
		pid=$(head -n 1 "$dir/data/postmaster.pid")
		_pg_as_owner "$PG_BINDIR/pg_ctl" stop -D "$dir/data" -m immediate >/dev/null 2>&1 || true
		# pg_ctl waits for the postmaster, and the postmaster for its
		# children; check anyway, bounded, and kill only our own postmaster.
		if [ -n "$pid" ]; then
			for tries in $(seq 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.05
			done
			if kill -0 "$pid" 2>/dev/null; then
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
	fi

	rm -rf -- "$dir"
	unset PGTEST_DIR PGTEST_URL_BASE PGHOST PGPORT
	return 0
}
