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

MOTO_SERVER=${MOTO_SERVER:-moto_server}
MOTO_AWS=${MOTO_AWS:-/usr/bin/aws}

# moto_aws ARGS… — Debian's aws CLI against the moto server, as the test user.
moto_aws() {
	AWS_ACCESS_KEY_ID=${MOTO_AWS_KEY:-$S3_ACCESS_KEY} \
		AWS_SECRET_ACCESS_KEY=${MOTO_AWS_SECRET:-$S3_SECRET_KEY} \
		AWS_DEFAULT_REGION=${S3_REGION:-us-east-1} AWS_CONFIG_FILE=/dev/null \
		AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= \
		"$MOTO_AWS" --endpoint-url "$MOTO_URL" "$@"
}

# moto_start [BUCKET] — start, wait, create the signing user and BUCKET
# (default unde-images); export the S3_* variables that point at it.
moto_start() {
	local bucket=${1:-unde-images} port attempt i pid logf dir
	command -v "$MOTO_SERVER" >/dev/null || { echo "moto_start: no $MOTO_SERVER" >&2; return 1; }
	dir=$(mktemp -d /tmp/unde-moto.XXXXXX) || return 1
	logf=$dir/moto.log
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		port=$(( ((RANDOM << 15) | RANDOM) % 30000 + 30000 ))
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
		INITIAL_NO_AUTH_ACTION_COUNT=3 "$MOTO_SERVER" -H 127.0.0.1 -p "$port" \
			</dev/null >"$logf" 2>&1 3>&- &
		pid=$!
		# ready when its control API answers (those calls cost no action);
		# importing moto takes a second, much longer on a loaded machine
		for i in $(seq 600); do
			kill -0 "$pid" 2>/dev/null || break
			curl -fsS --noproxy '*' --max-time 1 -o /dev/null \
				"http://127.0.0.1:$port/moto-api/" 2>/dev/null && break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null && curl -fsS --noproxy '*' --max-time 1 -o /dev/null \
			"http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
			break
		fi
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		pid=
	done
	if [ -z "$pid" ]; then
		echo "moto_start: server did not start; log:" >&2
		cat "$logf" >&2
		rm -rf "$dir"
		return 1
	fi
	export MOTO_PID=$pid MOTO_DIR=$dir MOTO_URL=http://127.0.0.1:$port
	(
		trap '' HUP INT TERM
		while kill -0 "$pid" 2>/dev/null && kill -0 "${BATS_ROOT_PID:-$$}" 2>/dev/null; do
			sleep 1
		done
		kill "$pid" 2>/dev/null
	) </dev/null >/dev/null 2>&1 3>&- &

	local policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
	local keys
	MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap moto_aws iam create-user --user-name unde \
		>/dev/null 2>"$dir/aws.err" &&
		keys=$(MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap moto_aws iam create-access-key \
			--user-name unde --output json 2>>"$dir/aws.err") &&
		MOTO_AWS_KEY=bootstrap MOTO_AWS_SECRET=bootstrap moto_aws iam put-user-policy \
			--user-name unde --policy-name all --policy-document "$policy" 2>>"$dir/aws.err" || {
		echo "moto_start: cannot create the IAM user:" >&2
		cat "$dir/aws.err" "$logf" >&2
		moto_stop
		return 1
	}
	export S3_ENDPOINT=$MOTO_URL S3_BUCKET=$bucket S3_REGION=us-east-1
	export S3_ACCESS_KEY S3_SECRET_KEY
	S3_ACCESS_KEY=$(jq -r .AccessKey.AccessKeyId <<<"$keys")
	S3_SECRET_KEY=$(jq -r .AccessKey.SecretAccessKey <<<"$keys")
	moto_aws s3api create-bucket --bucket "$bucket" >/dev/null 2>"$dir/aws.err" || {
		echo "moto_start: cannot create bucket $bucket:" >&2
		cat "$dir/aws.err" >&2
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
