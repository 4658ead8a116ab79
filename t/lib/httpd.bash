# t/lib/httpd.bash — unde-httpd behind a real superserver
# (systemd-socket-activate --inetd -a, as the systemd socket units run it)
# on a free loopback port, for the commands' "through unde-httpd" tests.
#
#   httpd_serve persona "$UNDE_TOP_SRCDIR/etc/httpd/persona.routes" \
#           SHARD_0_DB_URL="$url" -- --metrics-file "$W/httpd.metrics"
#   curl "http://127.0.0.1:$PERSONA_PORT/persona" …
#   httpd_stop persona            # or httpd_stop_all in teardown
#
# VAR=value arguments go into the server's environment (with PATH and
# UNDE_ENV_FILE=/dev/null); what follows -- goes to unde-httpd. The
# server's stderr is appended to $HTTPD_T_DIR/NAME.log (default: the test's
# temporary directory), its pid kept in NAME.pid there.

# shellcheck source=t/lib/port.bash
source "$(dirname "${BASH_SOURCE[0]}")/port.bash"

_httpd_dir() { printf '%s\n' "${HTTPD_T_DIR:-$BATS_TEST_TMPDIR}"; }

# httpd_serve NAME ROUTES [VAR=value…] [-- HTTPD_OPTION…] — start it, wait
# (up to 30 s on a loaded machine) until /health answers; export NAME_PORT.
# A port found taken is replaced by another (20 tries).
httpd_serve() {
	local name=$1 routes=$2 port pid try deadline dir
	dir=$(_httpd_dir)
	shift 2
	local envs=(-E UNDE_ENV_FILE=/dev/null -E "PATH=$PATH") opts=()
	while [ $# -gt 0 ]; do
		case $1 in
		--) shift; opts=("$@"); break ;;
		*=*) envs+=(-E "$1") ;;
		*) echo "httpd_serve: '$1' is neither VAR=value nor --" >&2; return 2 ;;
		esac
		shift
	done
	for ((try = 0; try < 20; try++)); do
		port=$(unde_port_candidate)
		unde_port_taken "$port" && continue
		unde_detach systemd-socket-activate --inetd -a -l "127.0.0.1:$port" "${envs[@]}" \
			unde-httpd --routes "$routes" "${opts[@]}" </dev/null 2>>"$dir/$name.log" &
		pid=$!
		deadline=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
			if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" &&
				kill -0 "$pid" 2>/dev/null; then
				echo "$pid" >"$dir/$name.pid"
				export "${name^^}_PORT=$port"
				return 0
			fi
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "httpd_serve: $name did not start; its log:" >&2
	cat "$dir/$name.log" >&2
	return 1
}

# httpd_stop NAME — stop that server (and with it its connections'
# processes); nothing when it is not running.
httpd_stop() {
	local dir pid
	dir=$(_httpd_dir)
	[ -f "$dir/$1.pid" ] || return 0
	pid=$(<"$dir/$1.pid")
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$dir/$1.pid"
}

# httpd_stop_all — every server started from this directory (teardown).
httpd_stop_all() {
	local dir f
	dir=$(_httpd_dir)
	for f in "$dir"/*.pid; do
		[ -e "$f" ] || continue
		f=${f##*/}
		httpd_stop "${f%.pid}"
	done
}
