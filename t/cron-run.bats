#!/usr/bin/env bats
# Every active line of cron/unde, run the way cron runs it (/bin/sh -c with
# the file's settings, in file order, as run-parts would the jobs of one
# night), against a local environment: PostgreSQL, the S3-compatible server,
# the fake Apify and brand CDN, production and one user shard (the local
# Ximilar collection, a local stock file, local embeddings). Each job must succeed, leave its stderr in
# its .err file and valid textfile metrics behind.

load lib/common
load lib/pg
load lib/moto
load lib/catalog

setup_file() {
	pg_start
	fake_start cdn cdn.py
	fake_start apify apify.py
	moto_start unde-images
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_setup cr cdn apify
	fake_config apify "{\"generate\": {\"count\": 2, \"cdn\": \"$CDN\", \"photos\": 2,
		\"spec\": \"jpeg-64x64\"}, \"polls\": 1}"
	export APIFY_API_URL=$FAKE_APIFY_URL APIFY_TOKEN=test-token APIFY_POLL_INTERVAL_MS=5
	W=$(unde_tmpdir)
	export UNDE_LOCK_DIR=$W/lock TZ=UTC
	PRODUCTION_DB_URL=$(pg_createdb "cronprod_$RANDOM")
	unde-db migrate production --url "$PRODUCTION_DB_URL" >/dev/null 2>&1
	SHARD_0_DB_URL=$(pg_createdb "cronshard_$RANDOM")
	unde-shard init --shard 0 --url "$SHARD_0_DB_URL" >/dev/null 2>&1
	export PRODUCTION_DB_URL SHARD_0_DB_URL EMBEDDING_PROVIDER=local
	: >"$W/stock.jsonl"
	export AVAILABILITY_STOCK_FILE=$W/stock.jsonl
}

# The crontab's own settings (NAME=value lines), with the log and metrics
# directories moved into the test's directory.
cron_env() {
	grep -E '^[A-Z_]+=' "$UNDE_TOP_SRCDIR/cron/unde" |
		sed -e "s|^UNDE_LOG_DIR=.*|UNDE_LOG_DIR=$W/log|" \
			-e "s|^UNDE_METRICS_DIR=.*|UNDE_METRICS_DIR=$W/metrics|" \
			-e "s|^PATH=.*|PATH=$PATH|"
}

@test "every active cron line runs successfully as cron would run it and leaves valid metrics" {
	mapfile -t settings < <(cron_env)
	n=0
	set -f
	while IFS= read -r line; do
		# the command part: from unde-job on, after the five times and the user
		cmd=${line#*unde-job}
		cmd="unde-job$cmd"
		job=$(awk '{ for (i = 1; i < NF; i++) if ($i == "unde-job") { print $(i + 1); exit } }' <<<"$line")
		env "${settings[@]}" S3_ENDPOINT="$S3_ENDPOINT" STAGING_DB_URL="$STAGING_DB_URL" \
			PRODUCTION_DB_URL="$PRODUCTION_DB_URL" SHARD_0_DB_URL="$SHARD_0_DB_URL" \
			/bin/sh -c "$cmd" || fail "job $job failed ($?): $(cat "$W/log/$job.err" 2>/dev/null)"
		[ -f "$W/log/$job.err" ] || fail "no $job.err"
		grep -q '"msg":"job finished"' "$W/log/$job.err" || fail "$job.err has no final log line"
		assert_equal "$(awk -v w="unde_job_exit_code{job=\"$job\"}" '$1 == w { print $2 }' "$W/metrics/unde_job_$job.prom")" 0
		n=$((n + 1))
	done < <(grep -Ev '^[[:space:]]*(#|$)|^[A-Z_]+=' "$UNDE_TOP_SRCDIR/cron/unde")
	set +f
	[ "$n" -ge 10 ]
	# the night's work really happened: six brands, photos up, collages made
	[ "$(sql 'select count(distinct brand) from raw_products')" = 6 ]
	[ "$(sql "select count(*) from raw_products where image_status <> 'collage_ready'")" = 0 ]
	# the commands' own metrics, per job, and all of it valid exposition text
	# (promtool's naming lints aside: §19 itself names photo_download_pending_count and its kin,
	# counters without _total and units like _ms)
	grep -q '^photo_download_errors{job="download_pending"} 0' "$W/metrics/unde_job_download_pending.unde-download.prom"
	grep -q '^collage_queue_size{job="process_collages"} 0' "$W/metrics/unde_job_process_collages.unde-collage.prom"
	for f in "$W"/metrics/*.prom; do
		out=$(promtool check metrics <"$f" 2>&1) && continue
		if grep -v -e '_pending_count non-histogram and non-summary metrics should not have "_count" suffix' \
			-e 'counter metrics should have "_total" suffix' -e 'should not contain abbreviated units' <<<"$out" | grep -q .; then
			fail "promtool refuses $f: $out"
		fi
	done
}
