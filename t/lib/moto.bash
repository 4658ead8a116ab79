# t/lib/moto.bash — a real S3-compatible server (moto) that checks SigV4
# signatures, for one bats file.
#
#   load lib/moto
#   setup_file()    { moto_start; }     # exports S3_ENDPOINT, S3_ACCESS_KEY,
#   teardown_file() { moto_stop; }      # S3_SECRET_KEY, S3_BUCKET, S3_REGION
#   @test … { moto_aws s3 cp "s3://$S3_BUCKET/k" -; }   # Debian's awscli 2
#
# moto accepts any key unless started with INITIAL_NO_AUTH_ACTION_COUNT: then
# only that many calls go unauthenticated. moto_start spends exactly three of
# them on an IAM user, its access key and an allow-all policy, so from then on
# every request must be signed with that key (a wrong secret gets 403
# SignatureDoesNotMatch). Each file gets its own server on a free port;
# a watchdog stops it if bats goes away without running teardown_file.
#
# Every step that waits on the server has a deadline that holds on a loaded
# 2-core machine, and a failure names the step: the start
# (MOTO_START_TIMEOUT, default 120 s until its control API answers), each
# IAM bootstrap call and the bucket (MOTO_STEP_TIMEOUT, default 180 s each,
# also the aws CLI's read timeout). The bootstrap calls are made once, never
# retried by the CLI: a retried call after a slow answer would spend one of
# the three unauthenticated actions twice and fail the next step.

# shellcheck source=t/lib/port.bash
source "$(dirname "${BASH_SOURCE[0]}")/port.bash"

MOTO_SERVER=${MOTO_SERVER:-moto_server}
MOTO_AWS=${MOTO_AWS:-/usr/bin/aws}

# moto_aws ARGS… — Debian's aws CLI against the moto server, as the test user.
# Bounded: the CLI's own timeouts, and a deadline on the whole call.
moto_aws() {
	local t=${MOTO_STEP_TIMEOUT:-180}
	AWS_ACCESS_KEY_ID=${MOTO_AWS_KEY:-$S3_ACCESS_KEY} \
		AWS_SECRET_ACCESS_KEY=${MOTO_AWS_SECRET:-$S3_SECRET_KEY} \
		AWS_DEFAULT_REGION=${S3_REGION:-us-east-1} AWS_CONFIG_FILE=/dev/null \
		AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= \
		timeout -k 5 "$((t + 10))" "$MOTO_AWS" --endpoint-url "$MOTO_URL" \
		--cli-connect-timeout 30 --cli-read-timeout "$t" "$@"
}

# _moto_step NAME CMD… — run one step of moto_start; on failure say which
# step, after how long, and what it printed (its stderr is $MOTO_DIR/step.err).
_moto_step() {
	local step=$1 start=$SECONDS rc
	shift
	"$@" 2>"$MOTO_DIR/step.err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		printf 'moto_start: step "%s" failed (exit %s) after %s s (deadline %s s):\n' \
			"$step" "$rc" "$((SECONDS - start))" "${MOTO_STEP_TIMEOUT:-180}" >&2
		cat "$MOTO_DIR/step.err" >&2
	fi
	return "$rc"
}

# moto_start [BUCKET] — start, wait, create the signing user and BUCKET
# (default unde-images); export the S3_* variables that point at it.
moto_start() {
	local bucket=${1:-unde-images} port attempt pid logf dir deadline alive
	command -v "$MOTO_SERVER" >/dev/null || { echo "moto_start: no $MOTO_SERVER" >&2; return 1; }
	dir=$(mktemp -d /tmp/unde-moto.XXXXXX) || return 1
	logf=$dir/moto.log
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		port=$(unde_port_candidate)
		unde_port_taken "$port" && continue
		unde_detach env INITIAL_NO_AUTH_ACTION_COUNT=3 "$MOTO_SERVER" -H 127.0.0.1 -p "$port" \
			</dev/null >"$logf" 2>&1 &
		pid=$!
		# ready when its control API answers (those calls cost no action);
		# importing moto takes a second, much longer on a loaded machine
		deadline=$((SECONDS + ${MOTO_START_TIMEOUT:-120}))
		while [ "$SECONDS" -lt "$deadline" ]; do
			kill -0 "$pid" 2>/dev/null || break
			curl -fsS --noproxy '*' --max-time 5 -o /dev/null \
				"http://127.0.0.1:$port/moto-api/" 2>/dev/null && break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null && curl -fsS --noproxy '*' --max-time 5 -o /dev/null \
			"http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
			break
		fi
		# a server that exited (the port was taken meanwhile) is tried on
		# another port; one still running but silent past the deadline is
		# a failure, not ten more deadlines
		alive=0
		kill -0 "$pid" 2>/dev/null && alive=1
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true # its status, not ours: under set -e it ended the retries
		pid=
		[ "$alive" = 1 ] && break
	done
	if [ -z "$pid" ]; then
		# to stderr, and to bats' own output (fd 3) too: bats does not show a
		# failed setup_file's stderr, and CI's log is all there is to read
		{
			echo "moto_start: step \"server start\": no answer from its control API within" \
				"${MOTO_START_TIMEOUT:-120} s (or it exited $attempt times); load: $(cut -d' ' -f1-3 /proc/loadavg); log:"
			tail -n 20 "$logf"
		} | tee /dev/stderr | sed 's/^/# /' >&3 2>/dev/null || true
		rm -rf "$dir"
		return 1
	fi
	export MOTO_PID=$pid MOTO_DIR=$dir MOTO_URL=http://127.0.0.1:$port
	(
		trap '' HUP INT TERM
		! declare -F unde_close_fds >/dev/null || unde_close_fds
		while kill -0 "$pid" 2>/dev/null && kill -0 "${BATS_ROOT_PID:-$$}" 2>/dev/null; do
			sleep 1
		done
		kill "$pid" 2>/dev/null
	) </dev/null >/dev/null 2>&1 3>&- &

	local policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
	local keys
	MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap AWS_MAX_ATTEMPTS=1 \
		_moto_step "iam create-user" moto_aws iam create-user --user-name unde >/dev/null &&
		keys=$(MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap AWS_MAX_ATTEMPTS=1 \
			_moto_step "iam create-access-key" moto_aws iam create-access-key \
			--user-name unde --output json) &&
		MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap AWS_MAX_ATTEMPTS=1 \
			_moto_step "iam put-user-policy" moto_aws iam put-user-policy \
			--user-name unde --policy-name all --policy-document "$policy" || {
		echo "moto_start: the IAM bootstrap failed; the server's log:" >&2
		cat "$logf" >&2
		moto_stop
		return 1
	}
	export S3_ENDPOINT=$MOTO_URL S3_BUCKET=$bucket S3_REGION=us-east-1
	export S3_ACCESS_KEY S3_SECRET_KEY
	S3_ACCESS_KEY=$(jq -r .AccessKey.AccessKeyId <<<"$keys")
	S3_SECRET_KEY=$(jq -r .AccessKey.SecretAccessKey <<<"$keys")
	_moto_step "create bucket $bucket" moto_aws s3api create-bucket --bucket "$bucket" >/dev/null || {
		moto_stop
		return 1
	}
}

# moto_stop — stop this file's server; safe to call twice.
moto_stop() {
	if [ -n "${MOTO_PID:-}" ]; then
		kill "$MOTO_PID" 2>/dev/null || true
		wait "$MOTO_PID" 2>/dev/null || true
	fi
	case ${MOTO_DIR:-} in /tmp/unde-moto.*) rm -rf -- "$MOTO_DIR" ;; esac
	unset MOTO_PID MOTO_DIR MOTO_URL
	return 0
}
