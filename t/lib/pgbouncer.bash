# t/lib/pgbouncer.bash — a real PgBouncer (Debian's, 1.18) in transaction
# pooling mode in front of the t/lib/pg.bash cluster, as every database URL
# of the spec goes through one (port 6432, pool_mode = transaction).
#
# Usage, in a .bats file:
#
#   load lib/pg
#   load lib/pgbouncer
#   setup_file()    { pg_start; pgb_start [ROLE ...]; }
#   teardown_file() { pgb_stop; pg_stop; }
#   @test "..." { url="$PGB_URL_BASE/mydb"; ...; }
#
# pgb_start exports PGB_DIR, PGB_PORT and PGB_URL_BASE
# (postgresql://postgres@127.0.0.1:PORT). Clients authenticate as postgres
# or as any ROLE given (trust, as the test cluster does); every database of
# the cluster is reachable under its own name. The pool is small (2 server
# connections per database and user), so concurrent clients really share
# server connections, which is what exposes session state.


# shellcheck source=t/lib/port.bash
source "$(dirname "${BASH_SOURCE[0]}")/port.bash"

PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}

# pgb_start [ROLE ...] — start pgbouncer on a free port; wait until it
# accepts connections. Needs pg_start's PGTEST_DIR and PGPORT.
pgb_start() {
	local dir port attempt u

	if [ -z "${PGTEST_DIR:-}" ] || [ -z "${PGPORT:-}" ]; then
		echo "pgb_start: no cluster (call pg_start first)" >&2
		return 1
	fi
	if [ ! -x "$PGBOUNCER" ]; then
		echo "pgb_start: no pgbouncer at $PGBOUNCER" >&2
		return 1
	fi
	dir=$(mktemp -d /tmp/unde-pgb.XXXXXX) || return 1
	export PGB_DIR=$dir
	{
		printf '"postgres" ""\n'
		for u in "$@"; do printf '"%s" ""\n' "$u"; done
	} >"$dir/userlist.txt"

	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		port=$(_pg_random_port)
		_pg_port_taken "$port" && continue
		cat >"$dir/pgbouncer.ini" <<-EOF
			[databases]
			* = host=127.0.0.1 port=$PGPORT

			[pgbouncer]
			listen_addr = 127.0.0.1
			listen_port = $port
			unix_socket_dir =
			auth_type = trust
			auth_file = $dir/userlist.txt
			pool_mode = transaction
			max_client_conn = 200
			default_pool_size = 2
			max_prepared_statements = 0
			server_reset_query =
			ignore_startup_parameters = extra_float_digits,options
			logfile = $dir/pgbouncer.log
			pidfile = $dir/pgbouncer.pid
		EOF
		# 1.18 does not know max_prepared_statements (1.21+); drop it.
		sed -i '/^max_prepared_statements/d' "$dir/pgbouncer.ini"
		if [ "$(id -u)" -eq 0 ]; then
			chown -R postgres: "$dir" || { pgb_stop; return 1; }
			(unde_detach "$PGBOUNCER" -d -u postgres "$dir/pgbouncer.ini") >"$dir/start.log" 2>&1 || true
		else
			(unde_detach "$PGBOUNCER" -d "$dir/pgbouncer.ini") >"$dir/start.log" 2>&1 || true
		fi
		# Wait (up to 60 s on a loaded machine) for it to answer a query.
		local i
		for i in $(seq 600); do
			if psql -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres \
				-c 'select 1' >/dev/null 2>&1; then
				export PGB_PORT=$port
				export PGB_URL_BASE="postgresql://postgres@127.0.0.1:$port"
				_pgb_watchdog "$dir" "${BATS_ROOT_PID:-$$}"
				return 0
			fi
			[ -f "$dir/pgbouncer.pid" ] || [ "$i" -lt 50 ] || break
			sleep 0.1
		done
		_pgb_kill
		grep -q 'Address already in use' "$dir/pgbouncer.log" "$dir/start.log" 2>/dev/null && continue
		echo "pgb_start: pgbouncer did not start on port $port:" >&2
		cat "$dir/start.log" "$dir/pgbouncer.log" >&2 2>/dev/null
		pgb_stop
		return 1
	done
	echo "pgb_start: no free port found" >&2
	pgb_stop
	return 1
}

# Stop pgbouncer in $1 when process $2 (bats) is gone, as pg.bash's
# watchdog does for the cluster: a killed run leaves nothing behind.
_pgb_watchdog() {
	local dir=$1 pid=$2
	(
		trap '' HUP INT TERM
		! declare -F unde_close_fds >/dev/null || unde_close_fds
		while [ -d "$dir" ] && kill -0 "$pid" 2>/dev/null; do
			sleep 1
		done
		[ -d "$dir" ] && PGB_DIR=$dir pgb_stop
	) </dev/null >/dev/null 2>&1 3>&- &
}

# Stop our pgbouncer (by its pid file) and wait, bounded, for it to go.
_pgb_kill() {
	local pid tries
	[ -f "${PGB_DIR:-}/pgbouncer.pid" ] || return 0
	pid=$(cat "$PGB_DIR/pgbouncer.pid" 2>/dev/null)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for tries in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# pgb_stop — stop pgbouncer and remove its directory; safe to call twice.
pgb_stop() {
	case ${PGB_DIR:-} in
	/tmp/unde-pgb.*) ;;
	*) return 0 ;;
	esac
	_pgb_kill
	rm -rf -- "$PGB_DIR"
	unset PGB_DIR PGB_PORT PGB_URL_BASE
	return 0
}
