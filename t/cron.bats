#!/usr/bin/env bats
# cron/unde: the §18 schedule, only ever naming commands that exist.

load lib/common

CRON="$UNDE_TOP_SRCDIR/cron/unde"

# The active (uncommented) job lines.
active_jobs() {
	grep -Ev '^[[:space:]]*(#|$)|^[A-Z_]+=' "$CRON"
}

@test "every active cron line is well formed and runs through unde-job" {
	set -f # the schedule's * fields must not expand to file names
	while IFS= read -r line; do
		set -- $line
		[ "$#" -ge 8 ] || fail "too few fields: $line"
		[ "$6" = unde ] || fail "user field is not unde: $line"
		[ "$7" = unde-job ] || fail "not wrapped in unde-job: $line"
	done < <(active_jobs)
}

@test "every active cron line names a command that is built" {
	set -f
	while IFS= read -r line; do
		set -- $line
		shift 6
		for w in "$@"; do
			case $w in unde-*) command -v "${w%%;*}" >/dev/null || fail "no such command: $w" ;; esac
		done
	done < <(active_jobs)
}

@test "the schedule keeps every job of spec section 18" {
	for job in apify_zara apify_bershka apify_pullandbear apify_stradivarius apify_massimodutti \
		apify_oysho download_pending download_retry process_collages collage_retry ximilar_sync \
		ximilar_retry availability_poll sync_to_production cleanup_old_data cleanup_temp_files; do
		grep -q "unde-job $job " "$CRON" || fail "missing job $job"
	done
}

@test "each job name appears once, so locks never collide" {
	dups=$(grep -o 'unde-job [a-z_]*' "$CRON" | sort | uniq -d)
	assert_equal "$dups" ""
}

@test "the schedule does not rely on CRON_TZ, which Debian's cron ignores" {
	run grep -E '^[[:space:]]*CRON_TZ=' "$CRON"
	assert_failure
	grep -q 'host must run on UTC' "$CRON"
}

@test "cron hands every job a log directory and the textfile directory" {
	grep -qx 'UNDE_LOG_DIR=/var/log/unde' "$CRON"
	grep -qx 'UNDE_METRICS_DIR=/var/lib/node_exporter/textfile_collector' "$CRON"
}

@test "logrotate rotates the jobs' .err files and keeps appending working" {
	d=$(unde_tmpdir)
	mkdir -p "$d/log"
	printf '{"error":1}\n' >"$d/log/download_pending.err"
	# The shipped config, pointed at a scratch directory and its own user.
	sed -e "s|/var/log/unde|$d/log|" -e "s|su unde unde|su $(id -un) $(id -gn)|" \
		"$UNDE_TOP_SRCDIR/etc/logrotate.d/unde" >"$d/conf"
	logrotate --state "$d/state" -f "$d/conf"
	[ -f "$d/log/download_pending.err.1" ]
	grep -qx '{"error":1}' "$d/log/download_pending.err.1"
	[ ! -s "$d/log/download_pending.err" ]
	UNDE_LOG_DIR=$d/log UNDE_METRICS_DIR=$d/m UNDE_LOCK_DIR=$d/l TZ=UTC \
		unde-job download_pending -- sh -c 'echo "{\"error\":2}" >&2'
	grep -qx '{"error":2}' "$d/log/download_pending.err"
}
