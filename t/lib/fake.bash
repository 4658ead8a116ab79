# fake.bash — start, steer and stop the fake upstream servers of t/fakes/.
#
#   setup_file()    { fake_start gemini gemini.py; export GEMINI_API_URL=$FAKE_GEMINI_URL; }
#   setup()         { fake_reset gemini; }
#   teardown_file() { fake_stop_all; }
#
# State (pid, port and log of each fake) lives in a directory of this test
# file only ($BATS_FILE_TMPDIR/fakes), and every fake listens on a port the OS
# chose, so several bats files can run at once. Each fake also watches the
# bats run ($BATS_ROOT_PID) and exits when it ends, should a teardown be
# skipped. FAKE_PYTHON picks the interpreter (default python3).

_FAKE_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../fakes" && pwd)

# Make sure FAKE_DIR, the state directory of this test file's fakes, is set
# and exists (not in a subshell: outside bats it is made once, with mktemp).
_fake_dir() {
	if [[ -z ${FAKE_DIR:-} ]]; then
		if [[ -n ${BATS_FILE_TMPDIR:-} ]]; then
			FAKE_DIR=$BATS_FILE_TMPDIR/fakes
		else
			FAKE_DIR=$(mktemp -d /tmp/unde-fakes.XXXXXX) || return 1
		fi
		export FAKE_DIR
	fi
	mkdir -p "$FAKE_DIR"
}

# NAME as used in variable names: upper case, anything else than [A-Z0-9_] → _.
_fake_var() {
	local v=${1^^}
	printf '%s\n' "${v//[^A-Z0-9_]/_}"
}

# True while PID is a live (not zombie) process running the fake whose port
# file is $2 — the second check guards against a recycled pid.
_fake_alive() {
	local pid=$1 portf=${2:-} stat
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/stat ]]; then
		# read, not $(<…): a fake that ends between the test and the read
		# fails a redirect in a subshell, which trips bats' ERR trap
		{ read -r stat </proc/"$pid"/stat; } 2>/dev/null || return 1
		stat=${stat##*) }
		[[ ${stat%% *} != Z ]] || return 1
		if [[ -n $portf ]]; then
			tr '\0' '\n' </proc/"$pid"/cmdline 2>/dev/null | grep -qxF -- "$portf" || return 1
		fi
	fi
}

# Base URL of fake NAME: from FAKE_<NAME>_URL, else from its port file.
_fake_url() {
	local var url port
	var=FAKE_$(_fake_var "$1")_URL
	url=${!var:-}
	if [[ -z $url ]]; then
		_fake_dir || return 1
		port=$(cat "$FAKE_DIR/$1.port" 2>/dev/null) || {
			echo "fake: no fake named '$1' is running" >&2
			return 1
		}
		url=http://127.0.0.1:$port
	fi
	printf '%s\n' "$url"
}

# curl to a fake's control API; prints the body, fails (body on stderr) unless 2xx.
_fake_ctl() {
	local method=$1 url=$2 data=${3-} out code
	local -a args=(-sS --noproxy '*' --max-time 10 -X "$method" -w '\n%{http_code}')
	[[ -n $data ]] || data='{}'
	if [[ $method == POST ]]; then
		args+=(-H 'Content-Type: application/json' --data-binary "$data")
	fi
	out=$(curl "${args[@]}" "$url") || {
		echo "fake: $method $url failed" >&2
		return 1
	}
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	if [[ $code != 2?? ]]; then
		printf 'fake: %s %s answered %s: %s\n' "$method" "$url" "$code" "$out" >&2
		return 1
	fi
	printf '%s\n' "$out"
}

# fake_start NAME SCRIPT [ARGS...]
# Start t/fakes/SCRIPT (or SCRIPT when it holds a /) in the background, wait
# until it answers /_fake/health (polling every 50 ms, at most
# FAKE_START_TIMEOUT seconds, default 30), then export FAKE_<NAME>_PORT and
# FAKE_<NAME>_URL. On failure print the fake's log and return 1.
fake_start() {
	if (($# < 2)); then
		echo "usage: fake_start NAME SCRIPT [ARGS...]" >&2
		return 2
	fi
	local name=$1 script=$2
	shift 2
	local dir var pidf portf logf pid port="" now deadline
	_fake_dir || return 1
	dir=$FAKE_DIR
	var=$(_fake_var "$name")
	pidf=$dir/$name.pid portf=$dir/$name.port logf=$dir/$name.log
	[[ $script == */* ]] || script=$_FAKE_SCRIPTS/$script
	if [[ -f $pidf ]] && _fake_alive "$(<"$pidf")" "$portf"; then
		echo "fake_start: fake '$name' is already running" >&2
		return 1
	fi
	rm -f "$portf"
	# fd 3 is bats' own output: a child holding it would make bats wait for it
	# (fakelib also closes every other inherited descriptor at start).
	PYTHONDONTWRITEBYTECODE=1 "${FAKE_PYTHON:-python3}" "$script" --port-file "$portf" \
		--watch-pid "${BATS_ROOT_PID:-$$}" "$@" </dev/null >"$logf" 2>&1 3>&- &
	pid=$!
	printf '%s\n' "$pid" >"$pidf"
	now=${EPOCHREALTIME/[.,]/}
	deadline=$((now + ${FAKE_START_TIMEOUT:-30} * 1000000))
	while :; do
		if ! _fake_alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			printf 'fake_start: %s (%s) exited before it was ready; its log:\n' "$name" "$script" >&2
			cat "$logf" >&2
			rm -f "$pidf"
			return 1
		fi
		if [[ -s $portf ]]; then
			port=$(<"$portf")
			curl -fsS --noproxy '*' --max-time 1 -o /dev/null \
				"http://127.0.0.1:$port/_fake/health" 2>/dev/null && break
		fi
		now=${EPOCHREALTIME/[.,]/}
		if ((now > deadline)); then
			printf 'fake_start: %s (%s) not ready after %ss; its log:\n' \
				"$name" "$script" "${FAKE_START_TIMEOUT:-30}" >&2
			cat "$logf" >&2
			fake_stop "$name"
			return 1
		fi
		sleep 0.05
	done
	export "FAKE_${var}_PORT=$port" "FAKE_${var}_URL=http://127.0.0.1:$port"
}

# fake_stop NAME
# Stop fake NAME: SIGTERM, up to 5 s for it to exit, then SIGKILL; reap it
# and forget its port and URL. Stopping a fake that is not running is fine.
fake_stop() {
	local name=$1 dir var pidf portf pid i
	_fake_dir || return 1
	dir=$FAKE_DIR
	var=$(_fake_var "$name")
	pidf=$dir/$name.pid portf=$dir/$name.port
	if [[ -f $pidf ]]; then
		pid=$(<"$pidf")
		if _fake_alive "$pid" "$portf"; then
			kill -TERM "$pid" 2>/dev/null || true
			for ((i = 0; i < 100; i++)); do
				_fake_alive "$pid" || break
				sleep 0.05
			done
			if _fake_alive "$pid"; then
				echo "fake_stop: $name (pid $pid) ignored SIGTERM; killing it" >&2
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		wait "$pid" 2>/dev/null || true # reap it when it is our child
		rm -f "$pidf"
	fi
	rm -f "$portf"
	unset "FAKE_${var}_PORT" "FAKE_${var}_URL"
	return 0
}

# fake_stop_all
# Stop every fake this test file started.
fake_stop_all() {
	local dir f
	_fake_dir || return 1
	dir=$FAKE_DIR
	for f in "$dir"/*.pid; do
		[[ -e $f ]] || continue
		f=${f##*/}
		fake_stop "${f%.pid}"
	done
}

# fake_fail NAME JSON
# Add a failure rule, e.g. fake_fail gemini '{"mode":"429","retry_after":"2"}'.
# Fails (with the fake's answer on stderr) when the rule is refused.
fake_fail() {
	local url
	url=$(_fake_url "$1") || return 1
	_fake_ctl POST "$url/_fake/fail" "$2" >/dev/null
}

# fake_reset NAME
# Clear the failure rules, the request log, and config/state set by a test.
fake_reset() {
	local url
	url=$(_fake_url "$1") || return 1
	_fake_ctl POST "$url/_fake/reset" >/dev/null
}

# fake_config NAME JSON
# Merge JSON (an object) into the fake's config (fake-specific knobs, e.g.
# the items a fake Apify run returns); fake_reset restores the defaults.
fake_config() {
	local url
	url=$(_fake_url "$1") || return 1
	_fake_ctl POST "$url/_fake/config" "$2" >/dev/null
}

# fake_requests NAME [PATH]
# Print the JSON array of requests received (oldest first), optionally only
# those whose path starts with / matches PATH: fake_requests x | jq length
fake_requests() {
	local url q=
	url=$(_fake_url "$1") || return 1
	if [[ -n ${2:-} ]]; then
		q="?path=$(jq -rn --arg p "$2" '$p|@uri')"
	fi
	_fake_ctl GET "$url/_fake/requests$q"
}
