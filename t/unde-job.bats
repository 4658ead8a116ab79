#!/usr/bin/env bats
# t/unde-job.bats — the cron wrapper: lock, exit status, metrics, records, log.

load lib/common

setup() {
	W=$(unde_tmpdir)
	export UNDE_LOCK_DIR=$W/lock UNDE_METRICS_DIR=$W/metrics
	export TZ=UTC # the schedule's zone; one test sets another
	unset UNDE_LOG_DIR UNDE_JOB_ALLOW_LOCAL_TZ
	bg_pid=
}

teardown() {
	# A test that failed half-way may have left a run blocked on its fifo:
	# release it (bounded) rather than leave it waiting forever.
	if [ -n "${bg_pid:-}" ] && kill -0 "$bg_pid" 2>/dev/null; then
		timeout 5 sh -c 'echo go >"$1"' sh "$bg_release" || true
		timeout 5 tail --pid="$bg_pid" -f /dev/null || kill "$bg_pid" 2>/dev/null || true
	fi
	unde_teardown
}

# metric NAME JOB — the value of metric NAME{job="JOB"} in JOB's .prom file.
metric() {
	awk -v want="$1{job=\"$2\"}" '$1 == want { print $2 }' "$W/metrics/unde_job_$2.prom"
}

# start_blocked NAME — start a run of NAME in the background whose CMD tells
# us it has started, then waits until release_blocked. Returns once CMD runs,
# i.e. once that run holds NAME's lock. No sleeps: both sides meet on fifos.
start_blocked() {
	mkfifo "$W/ready.$1" "$W/release.$1"
	unde-job "$1" -- sh -c 'echo ready >"$1"; cat "$2" >/dev/null' sh \
		"$W/ready.$1" "$W/release.$1" 2>"$W/first.$1.log" 3>&- &
	bg_pid=$!
	bg_release=$W/release.$1
	local line=
	# <> opens the fifo without blocking, so read's timeout bounds the wait.
	read -r -t 20 line <>"$W/ready.$1"
	[ "$line" = ready ]
}

release_blocked() {
	echo go >"$W/release.$1"
	wait "$bg_pid"
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr unde-job --help
	assert_success
	assert_output --partial 'usage: unde-job'
	assert_output --partial -- '--timeout SECONDS'
	[ -z "$stderr" ]
}

@test "--version prints the name and version" {
	run unde-job --version
	assert_success
	assert_output 'unde-job 0.1.0'
}

@test "a second run of the same job is skipped while the first still runs" {
	start_blocked crawl
	run unde-job crawl -- touch "$W/second-ran"
	assert_success
	assert_output --partial '"msg":"skipped: previous run still active"'
	assert_output --partial '"job":"crawl"'
	[ ! -e "$W/second-ran" ]
	release_blocked crawl
	# Once the first run is over, the job runs again.
	run unde-job crawl -- touch "$W/third-ran"
	assert_success
	[ -e "$W/third-ran" ]
}

@test "jobs with different names run at the same time" {
	start_blocked one
	run unde-job two -- touch "$W/two-ran"
	assert_success
	refute_output --partial 'skipped'
	[ -e "$W/two-ran" ]
	release_blocked one
}

@test "the command's exit status is the wrapper's exit status" {
	run unde-job failing -- sh -c 'exit 7'
	assert_equal "$status" 7
	assert_equal "$(metric unde_job_exit_code failing)" 7
	run unde-job fine -- true
	assert_success
	assert_equal "$(metric unde_job_exit_code fine)" 0
}

@test "stdin and stdout pass through, so a pipeline works as the command" {
	run bash -c 'printf "a\nb\nc\n" | unde-job pipe -- sh -c "tr a-z A-Z | sort -r" 2>/dev/null'
	assert_success
	assert_output $'C\nB\nA'
}

@test "the metrics file has every metric with HELP, TYPE and the job label" {
	before=$(date +%s)
	run unde-job catalog -- true
	assert_success
	after=$(date +%s)
	f=$W/metrics/unde_job_catalog.prom
	[ -f "$f" ]
	for m in last_success_timestamp_seconds last_run_timestamp_seconds \
		duration_seconds exit_code; do
		grep -qx "# HELP unde_job_$m .*" "$f"
		grep -qx "# TYPE unde_job_$m gauge" "$f"
		grep -Eqx "unde_job_$m\{job=\"catalog\"\} [0-9]+(\.[0-9]+)?" "$f"
	done
	ts=$(metric unde_job_last_success_timestamp_seconds catalog)
	awk -v t="$ts" -v b="$before" -v a="$after" 'BEGIN { exit !(t >= b && t <= a + 1) }'
	# No record counts were reported, so there are no record metrics.
	run grep -c records "$f"
	assert_output 0
	# node_exporter runs as another user: the file must be world-readable.
	assert_equal "$(stat -c %a "$f")" 644
}

@test "the metrics file is replaced by rename and no temp file is left" {
	unde-job atomic -- true 2>/dev/null
	ino1=$(stat -c %i "$W/metrics/unde_job_atomic.prom")
	run unde-job atomic -- false
	assert_failure 1
	ino2=$(stat -c %i "$W/metrics/unde_job_atomic.prom")
	# A rename puts a new inode in place; rewriting in place would keep it.
	[ "$ino1" != "$ino2" ]
	run ls -A "$W/metrics"
	assert_output $'unde-job.d\nunde_job_atomic.prom'
}

@test "a failing run keeps the last success time of the previous run" {
	unde-job sync -- true 2>/dev/null
	ok=$(metric unde_job_last_success_timestamp_seconds sync)
	run1=$(metric unde_job_last_run_timestamp_seconds sync)
	[ -n "$ok" ]
	run unde-job sync -- sh -c 'exit 3'
	assert_failure 3
	assert_equal "$(metric unde_job_last_success_timestamp_seconds sync)" "$ok"
	assert_equal "$(metric unde_job_exit_code sync)" 3
	run2=$(metric unde_job_last_run_timestamp_seconds sync)
	awk -v a="$run1" -v b="$run2" 'BEGIN { exit !(b >= a) }'
}

@test "a job that never succeeded has no last success metric" {
	run unde-job broken -- false
	assert_failure 1
	[ -f "$W/metrics/unde_job_broken.prom" ]
	run grep -c last_success "$W/metrics/unde_job_broken.prom"
	assert_output 0
}

@test "record counts come from the last line written to UNDE_JOB_STATS" {
	run --separate-stderr unde-job records -- sh -c '
		echo "$UNDE_JOB_STATS" >"$1"
		echo "{\"records_done\":5,\"records_failed\":0}" >>"$UNDE_JOB_STATS"
		echo "{\"records_done\":9,\"records_failed\":2}" >>"$UNDE_JOB_STATS"' sh "$W/statsname"
	assert_success
	assert_equal "$(metric unde_job_records_done records)" 9
	assert_equal "$(metric unde_job_records_failed records)" 2
	grep -qx '# TYPE unde_job_records_done gauge' "$W/metrics/unde_job_records.prom"
	line=$(printf '%s\n' "$stderr" | grep '"job finished"')
	assert_equal "$(jq -c '[.records_done, .records_failed]' <<<"$line")" '[9,2]'
	# The stats file is a temp file of the wrapper's: gone afterwards.
	stats=$(cat "$W/statsname")
	[ -n "$stats" ]
	[ ! -e "$stats" ]
}

@test "the stats file is removed even when the command fails" {
	run unde-job records -- sh -c 'echo "$UNDE_JOB_STATS" >"$1"; exit 65' sh "$W/statsname"
	assert_failure 65
	stats=$(cat "$W/statsname")
	[ -n "$stats" ]
	[ ! -e "$stats" ]
}

@test "a malformed stats line is ignored with a warning" {
	run unde-job records -- sh -c 'echo "not json" >>"$UNDE_JOB_STATS"'
	assert_success
	assert_output --partial 'malformed UNDE_JOB_STATS'
	run grep -c records_ "$W/metrics/unde_job_records.prom"
	assert_output 0
}

@test "each run logs one JSON line with job, exit code and duration" {
	run --separate-stderr unde-job logme -- sh -c 'exit 2'
	assert_failure 2
	assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 1
	jq_e '.msg == "job finished" and .level == "error" and .cmd == "unde-job"
		and .job == "logme" and .exit_code == 2 and (.duration_seconds | type) == "number"
		and .request_id == null
		and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$"))' <<<"$stderr"
}

@test "--timeout kills a command that runs too long and records exit 124" {
	run unde-job --timeout 0.3 slow -- sleep 60
	assert_failure 124
	assert_output --partial '"timed_out":true'
	assert_equal "$(metric unde_job_exit_code slow)" 124
}

@test "--lock-dir and --metrics-dir override the environment" {
	run unde-job --lock-dir "$W/l2" --metrics-dir "$W/m2" opts -- true
	assert_success
	[ -f "$W/m2/unde_job_opts.prom" ]
	[ -f "$W/l2/opts.lock" ]
	[ ! -e "$W/metrics/unde_job_opts.prom" ]
}

@test "a bad job name is a usage error and the command does not run" {
	for bad in 'a/b' '../x' 'sp ace' '' 'ü'; do
		run unde-job "$bad" -- touch "$W/ran"
		assert_equal "$status" 64
		[ ! -e "$W/ran" ]
	done
}

@test "a missing -- or command is a usage error" {
	run unde-job name touch "$W/ran"
	assert_equal "$status" 64
	run unde-job name --
	assert_equal "$status" 64
	run unde-job --timeout nope name -- true
	assert_equal "$status" 64
	run unde-job --bogus name -- true
	assert_equal "$status" 64
	[ ! -e "$W/ran" ]
}

@test "an unusable lock directory is a configuration error" {
	: >"$W/file"
	run unde-job --lock-dir "$W/file/sub" x -- touch "$W/ran"
	assert_equal "$status" 78
	[ ! -e "$W/ran" ]
}

@test "promtool accepts the metrics file" {
	command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus)"
	printf '{"records_done":3,"records_failed":1}\n' >"$W/stats.json"
	unde-job checked -- sh -c 'cat "$1" >>"$UNDE_JOB_STATS"' sh "$W/stats.json" 2>/dev/null
	run promtool check metrics <"$W/metrics/unde_job_checked.prom"
	assert_success
}

# A command that writes its own textfile metrics the way lib/metrics.c does:
# $UNDE_METRICS_DIR/fake-cmd.prom, the same names whatever the run kind.
fake_cmd() {
	printf '%s\n' "printf '# HELP photo_download_errors Photos of the last run that failed\n# TYPE photo_download_errors gauge\nphoto_download_errors $1\n# HELP apify_scraper_items Items fetched\n# TYPE apify_scraper_items gauge\napify_scraper_items{brand=\"zara\"} 7\n' >\"\$UNDE_METRICS_DIR/fake-cmd.prom\""
}

@test "the command gets a metrics directory of its own and its metrics come out labelled with the job" {
	run --separate-stderr unde-job download_pending -- sh -c 'echo "$UNDE_METRICS_DIR"'
	assert_success
	assert_output "$W/metrics/unde-job.d/download_pending"
	unde-job download_pending -- sh -c "$(fake_cmd 3)" 2>/dev/null
	f=$W/metrics/unde_job_download_pending.fake-cmd.prom
	[ -f "$f" ]
	grep -qx 'photo_download_errors{job="download_pending"} 3' "$f"
	grep -qx 'apify_scraper_items{job="download_pending",brand="zara"} 7' "$f"
	grep -qx '# TYPE photo_download_errors gauge' "$f"
}

@test "two run kinds of one command keep their own metrics and node_exporter serves both" {
	unde-job download_pending -- sh -c "$(fake_cmd 1)" 2>/dev/null
	unde-job download_retry -- sh -c "$(fake_cmd 9)" 2>/dev/null
	grep -qx 'photo_download_errors{job="download_pending"} 1' "$W/metrics/unde_job_download_pending.fake-cmd.prom"
	grep -qx 'photo_download_errors{job="download_retry"} 9' "$W/metrics/unde_job_download_retry.fake-cmd.prom"
	cat "$W"/metrics/unde_job_download_pending.fake-cmd.prom | promtool check metrics
	command -v prometheus-node-exporter >/dev/null || skip "no prometheus-node-exporter"
	# The real collector, on a port the OS picks, reading the directory.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	prometheus-node-exporter --web.listen-address="127.0.0.1:$port" \
		--collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$W/metrics" >"$W/ne.log" 2>&1 &
	bg_ne=$!
	body=
	for _ in $(seq 300); do
		body=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null) && break
		sleep 0.1
	done
	kill "$bg_ne"; wait "$bg_ne" || true
	grep -qx 'photo_download_errors{job="download_pending"} 1' <<<"$body"
	grep -qx 'photo_download_errors{job="download_retry"} 9' <<<"$body"
	grep -qx 'node_textfile_scrape_error 0' <<<"$body"
	grep -q '^unde_job_exit_code{job="download_retry"} 0' <<<"$body"
}

@test "with a log directory the command's stderr and the job's log line are appended to NAME.err" {
	export UNDE_LOG_DIR=$W/log
	run --separate-stderr unde-job errs -- sh -c 'echo out; echo "{\"error\":1}" >&2; exit 3'
	assert_failure 3
	assert_output out
	assert_equal "$stderr" ""
	run --separate-stderr unde-job --log-dir "$W/log" errs -- sh -c 'echo "{\"error\":2}" >&2'
	assert_success
	assert_equal "$(grep -c '^{"error":' "$W/log/errs.err")" 2
	assert_equal "$(grep -c '"msg":"job finished"' "$W/log/errs.err")" 2
	head -n 1 "$W/log/errs.err" | grep -qx '{"error":1}'
}

@test "an unwritable log directory is a configuration error and the command does not run" {
	: >"$W/notadir"
	run unde-job --log-dir "$W/notadir" nolog -- touch "$W/ran"
	assert_failure 78
	[ ! -e "$W/ran" ]
}

@test "a host not on UTC is refused, because Debian's cron ignores CRON_TZ" {
	run --separate-stderr env TZ=Asia/Dubai unde-job tz -- touch "$W/ran"
	assert_failure 78
	[[ "$stderr" == *'not UTC'* ]]
	[ ! -e "$W/ran" ]
	run env TZ=Asia/Dubai UNDE_JOB_ALLOW_LOCAL_TZ=1 unde-job tz -- touch "$W/ran"
	assert_success
	[ -e "$W/ran" ]
}
