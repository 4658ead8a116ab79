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
