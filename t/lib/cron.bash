# t/lib/cron.bash — run every active line of cron/unde the way cron runs it:
# /bin/sh -c with the file's NAME=value settings, in file order (as the
# jobs of one night would run), optionally as another user. Needs W (the
# test's directory: log/ and metrics/ go there) and the environment the
# jobs talk to (STAGING_DB_URL, PRODUCTION_DB_URL, SHARD_0_DB_URL,
# S3_ENDPOINT and the fakes' URLs) exported.

# The crontab's own settings, with the log and metrics directories moved
# into $W and PATH to the commands under test.
cron_env() {
	grep -E '^[A-Z_]+=' "$UNDE_TOP_SRCDIR/cron/unde" |
		sed -e "s|^UNDE_LOG_DIR=.*|UNDE_LOG_DIR=$W/log|" \
			-e "s|^UNDE_METRICS_DIR=.*|UNDE_METRICS_DIR=$W/metrics|" \
			-e "s|^PATH=.*|PATH=$PATH|"
}

# cron_run_every_line [USER] — each job (but those named in CRON_SKIP_JOBS)
# must succeed, leave its stderr in
# its .err file with a final log line and an exit code 0 in its textfile.
# Sets CRON_JOBS_RUN to the number of jobs run.
cron_run_every_line() {
	local user=${1:-} line cmd job settings runas=()
	CRON_JOBS_RUN=0
	mapfile -t settings < <(cron_env)
	[ -n "$user" ] && runas=(runuser -u "$user" --)
	set -f
	while IFS= read -r line; do
		# the command part: from unde-job on, after the five times and the user
		cmd=${line#*unde-job}
		cmd="unde-job$cmd"
		job=$(awk '{ for (i = 1; i < NF; i++) if ($i == "unde-job") { print $(i + 1); exit } }' <<<"$line")
		[[ " $(echo ${CRON_SKIP_JOBS:-}) " == *" $job "* ]] && continue
		"${runas[@]}" env "${settings[@]}" S3_ENDPOINT="$S3_ENDPOINT" STAGING_DB_URL="$STAGING_DB_URL" \
			PRODUCTION_DB_URL="$PRODUCTION_DB_URL" SHARD_0_DB_URL="$SHARD_0_DB_URL" \
			/bin/sh -c "$cmd" || fail "job $job failed ($?): $(cat "$W/log/$job.err" 2>/dev/null)"
		[ -f "$W/log/$job.err" ] || fail "no $job.err"
		grep -q '"msg":"job finished"' "$W/log/$job.err" || fail "$job.err has no final log line"
		assert_equal "$(awk -v w="unde_job_exit_code{job=\"$job\"}" '$1 == w { print $2 }' "$W/metrics/unde_job_$job.prom")" 0
		CRON_JOBS_RUN=$((CRON_JOBS_RUN + 1))
	done < <(grep -Ev '^[[:space:]]*(#|$)|^[A-Z_]+=' "$UNDE_TOP_SRCDIR/cron/unde")
	set +f
}
