# common.bash — loaded first by every test file: `load lib/common`.
#
# Loads bats-support, bats-assert (and bats-file when present) and the fake
# helpers (fake.bash); puts the built commands first on PATH; scrubs the
# developer's UNDE configuration from the environment; gives per-test temp
# directories and assertions for the JSON-lines contract (ARCHITECTURE.md §3).
#
# It defines default teardown/teardown_file hooks. A test file that defines
# its own must call unde_teardown / unde_teardown_file from them.

bats_require_minimum_version 1.5.0 # run --separate-stderr, run -N

# Load bats helper library NAME from BATS_LIB_PATH or the usual places.
# Returns 1 when it is not installed.
_unde_load_lib() {
	local d dirs
	IFS=: read -ra dirs <<<"${BATS_LIB_PATH:-}"
	for d in "${dirs[@]}" /usr/lib/bats /usr/local/lib/bats; do
		if [[ -n $d && -f $d/$1/load.bash ]]; then
			load "$d/$1/load.bash"
			return 0
		fi
	done
	return 1
}
_unde_load_lib bats-support || { echo "common.bash: bats-support is not installed" >&2; return 1; }
_unde_load_lib bats-assert || { echo "common.bash: bats-assert is not installed" >&2; return 1; }
_unde_load_lib bats-file || true

# bats-assert's assert_success, which after `run --separate-stderr` also
# shows the end of the command's stderr when it failed: its error line, or a
# sanitizer's report, is what says why (CI keeps only the failure's log).
eval "_bats_assert_success() $(declare -f assert_success | tail -n +2)"
assert_success() {
	if [[ ${status:-0} -ne 0 && -n ${stderr:-} ]]; then
		printf '%s\n' '-- stderr (end) --' >&2
		tail -n 12 <<<"$stderr" | cut -c1-400 >&2
		printf '%s\n' '--' >&2
	fi
	_bats_assert_success "$@"
}

# shellcheck source=t/lib/fake.bash
source "$(dirname "${BASH_SOURCE[0]}")/fake.bash"
# shellcheck source=t/lib/port.bash
source "$(dirname "${BASH_SOURCE[0]}")/port.bash"

# Where the sources and the built commands are (make check exports both for
# out-of-tree builds; by default the tree this file lives in).
UNDE_TOP_SRCDIR=${UNDE_TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
UNDE_TOP_BUILDDIR=${UNDE_TOP_BUILDDIR:-$UNDE_TOP_SRCDIR}
export UNDE_TOP_SRCDIR UNDE_TOP_BUILDDIR
if [[ $PATH != "$UNDE_TOP_BUILDDIR/src:$UNDE_TOP_SRCDIR/bin:"* ]]; then
	PATH=$UNDE_TOP_BUILDDIR/src:$UNDE_TOP_SRCDIR/bin:$PATH
fi

# Unset configuration that could leak in from the developer's shell: service
# URLs and keys (a stray GEMINI_API_KEY must never reach the real API),
# database URLs, S3, libpq's PG* defaults, UNDE_*, proxies (tests talk only
# to loopback). Kept: the harness's own knobs (UNDE_TOP_SRCDIR,
# UNDE_TOP_BUILDDIR, UNDE_VALGRIND from make check-valgrind, the opt-in
# UNDE_TEST_*, PG_BINDIR and other PG_* of t/lib/pg.bash, FAKE_*). Done once per test file, before
# setup_file, so what setup_file exports survives each test's re-load.
_unde_scrub_env() {
	local v
	for v in $(compgen -e); do
		case $v in
		UNDE_TOP_SRCDIR | UNDE_TOP_BUILDDIR | UNDE_VALGRIND | UNDE_TEST_* | PG_* | FAKE_*) ;;
		*_DB_URL | *_API_URL | *_API_KEY | *_API_TOKEN | *_TOKEN | *_SECRET | *_SECRET_KEY | \
			*_ACCESS_KEY | *_PASSWORD | *_AGENT_URL | *_GW_URL | DATABASE_URL | REDIS_URL | \
			MASTER_ENCRYPTION_KEY | S3_* | UNDE_* | PG* | [Hh][Tt][Tt][Pp]*_[Pp][Rr][Oo][Xx][Yy] | \
			[Aa][Ll][Ll]_[Pp][Rr][Oo][Xx][Yy])
			unset "$v"
			;;
		esac
	done
}
if [[ ${_UNDE_T_SCRUBBED:-} != "${BATS_ROOT_PID:-}:${BATS_TEST_FILENAME:-}" ]]; then
	_unde_scrub_env
	export _UNDE_T_SCRUBBED=${BATS_ROOT_PID:-}:${BATS_TEST_FILENAME:-}
fi
export UNDE_ENV_FILE=/dev/null # never read /etc/unde/unde.env in tests

# unde_close_fds — close every descriptor above 2 of the calling (sub)shell.
# A background watchdog must hold none of bats' pipes or automake's .log
# file: one that outlives a teardown that did not stop it would otherwise
# keep the run waiting for an end of file that never comes.
unde_close_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
	done
	return 0
}

# unde_detach CMD… — become CMD with none of those descriptors (a server a
# test starts: the postmaster, moto, pgbouncer, the superserver). It
# replaces the shell it runs in, so call it in the background
# (`unde_detach cmd … &`: $! is then the command's own pid) or in a
# subshell (`( unde_detach cmd … )`).
unde_detach() {
	unde_close_fds
	if declare -F "$1" >/dev/null; then
		"$@"
		exit
	fi
	exec "$@"
}

# uuid — a fresh random UUID on stdout.
uuid() { cat /proc/sys/kernel/random/uuid; }

# unde_tmpdir
# Print the path of a fresh directory under /tmp (mode 755, so the postgres
# user can enter it — bats' own temp dirs are 700). Made in a test, it is
# removed by unde_teardown; made in setup_file, by unde_teardown_file.
unde_tmpdir() {
	local d
	d=$(mktemp -d /tmp/unde-t.XXXXXX) || return 1
	chmod 755 "$d"
	if [[ -n ${BATS_TEST_TMPDIR:-} ]]; then
		printf '%s\n' "$d" >>"$BATS_TEST_TMPDIR/.unde-tmpdirs"
	fi
	# also listed per file, so a teardown that forgets unde_teardown leaks nothing
	printf '%s\n' "$d" >>"${BATS_FILE_TMPDIR:-/tmp}/.unde-tmpdirs"
	printf '%s\n' "$d"
}

# Remove the directories listed in $1/.unde-tmpdirs.
_unde_rm_tmpdirs() {
	local list=$1/.unde-tmpdirs d
	[[ -f $list ]] || return 0
	while IFS= read -r d; do
		[[ $d == /tmp/unde-t.* ]] && rm -rf -- "$d"
	done <"$list"
	rm -f -- "$list"
}

# unde_teardown — per-test cleanup: the servers a test started through
# t/lib/httpd.bash (one that failed halfway never reached its httpd_stop)
# and the test's unde_tmpdir directories.
unde_teardown() {
	if declare -F httpd_stop_all >/dev/null && [ -z "${HTTPD_T_DIR:-}" ]; then
		httpd_stop_all
	fi
	_unde_rm_tmpdirs "${BATS_TEST_TMPDIR:-/nonexistent}"
}

# unde_teardown_file — per-file cleanup: every fake, every unde_tmpdir directory.
unde_teardown_file() {
	fake_stop_all
	_unde_rm_tmpdirs "${BATS_FILE_TMPDIR:-/nonexistent}"
}

teardown() { unde_teardown; }
teardown_file() { unde_teardown_file; }

# wait_until SECONDS COMMAND... — poll COMMAND until it succeeds.
wait_until() {
	local limit=$1 now deadline
	shift
	now=${EPOCHREALTIME/[.,]/}
	deadline=$((now + limit * 1000000))
	until "$@"; do
		((${EPOCHREALTIME/[.,]/} < deadline)) || return 1
		sleep 0.05
	done
}

# assert_json_line_count N
# $output (stdout of the last `run`) is exactly N lines, each one JSON object.
assert_json_line_count() {
	local want=$1 n=0 verdicts bad=0 v
	if [[ -n ${output:-} ]]; then
		verdicts=$(jq -R 'try (fromjson | type == "object") catch false' <<<"$output") || verdicts=false
		while IFS= read -r v; do
			n=$((n + 1))
			[[ $v == true ]] || { ((bad)) || bad=$n; }
		done <<<"$verdicts"
	fi
	if ((bad)); then
		{
			batslib_print_kv_single 8 'line' "$bad"
			batslib_print_kv_single_or_multi 8 'output' "$output"
		} | batslib_decorate 'output line is not a JSON object' | fail
	elif ((n != want)); then
		{
			batslib_print_kv_single 8 'expected' "$want lines" 'actual' "$n lines"
			batslib_print_kv_single_or_multi 8 'output' "$output"
		} | batslib_decorate 'wrong number of JSON lines' | fail
	fi
}

# assert_jq [JQ_OPTION...] FILTER
# FILTER is true (not false/null) for every JSON value in $output, and there
# is at least one: assert_jq '.reply.text | length > 0'. Options go to jq:
# assert_jq --arg id r1 '.request_id == $id'; assert_jq -s 'length == 3'.
assert_jq() {
	local filter=${!#} res
	local -a opts=("${@:1:$#-1}")
	if res=$(jq -c "${opts[@]}" "($filter) | (. != false and . != null)" <<<"${output:-}" 2>&1) &&
		[[ -n $res && $res != *false* ]]; then
		return 0
	fi
	batslib_print_kv_single_or_multi 8 'filter' "$filter" 'jq says' "$res" 'output' "${output:-}" |
		batslib_decorate 'jq filter does not hold' | fail
}

# jq_e [OPTIONS] FILTER [FILE] — `jq -e` that fails when there was no JSON
# to test. jq 1.6's -e exits 0 on empty input, so `cmd | jq -e X` held
# whenever cmd printed nothing; jq_e holds only when a value was produced
# and the last one is neither false nor null. Prints what jq printed.
jq_e() {
	local out rc
	out=$(
		jq -e "$@"
		printf 'rc=%d' $?
	)
	rc=${out##*rc=} out=${out%rc=*}
	printf '%s' "$out"
	((rc == 0)) || return "$rc"
	[[ -n $out ]] || {
		echo "jq_e: no JSON value to test with ${!#}" >&2
		return 4
	}
}

# assert_stderr_error_code CODE
# stderr (from `run --separate-stderr`; else $output) has a JSON line
# {"level":"error",...,"error":{"code":CODE}} — the error contract of §3.
assert_stderr_error_code() {
	local code=$1 err=${stderr-${output:-}}
	if jq -Rne --arg c "$code" '[inputs | fromjson? | objects
			| select(.level == "error" and (.error.code | tostring) == $c)] | length > 0' \
		<<<"$err" >/dev/null 2>&1; then
		return 0
	fi
	batslib_print_kv_single_or_multi 8 'code' "$code" 'stderr' "$err" |
		batslib_decorate 'no error line with this code on stderr' | fail
}
