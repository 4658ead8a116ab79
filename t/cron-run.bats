#!/usr/bin/env bats
# Every active line of cron/unde, run the way cron runs it (/bin/sh -c with
# the file's settings, in file order, as run-parts would the jobs of one
# night), against a local environment: PostgreSQL, the S3-compatible server,
# the fake Apify and brand CDN, production and one user shard (the local
# Ximilar collection, a local stock file, local embeddings). Each job must
# succeed, leave its stderr in its .err file and valid textfile metrics.

load lib/common
load lib/pg
load lib/moto
load lib/catalog
load lib/cron

setup_file() {
	catalog_setup_file cdn apify
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
	# the shard host's HA and backup jobs need a Patroni cluster, a backup
	# repository and pgBackRest stanzas: t/unde-cluster.bats runs those
	# commands against real ones
	export CRON_SKIP_JOBS="cluster_check shard_basebackup shard_snapshot backup_metrics
		pgbackrest_production_full pgbackrest_production_diff pgbackrest_staging_full pgbackrest_staging_diff"
}

@test "every active cron line runs successfully as cron would run it and leaves valid metrics" {
	cron_run_every_line
	[ "$CRON_JOBS_RUN" -ge 10 ]
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

@test "as root on a throwaway machine every cron line runs as the unde user" {
	[ "${UNDE_TEST_SYSTEM_INSTALL:-}" = 1 ] || skip "set UNDE_TEST_SYSTEM_INSTALL=1 on a throwaway machine (writes /etc)"
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	unde-install >/dev/null
	mkdir -p "$W/log" "$W/metrics" "$UNDE_LOCK_DIR"
	chown unde: "$W/log" "$W/metrics" "$UNDE_LOCK_DIR"
	cron_run_every_line unde
	[ "$CRON_JOBS_RUN" -ge 10 ]
	[ "$(sql "select count(*) from raw_products where image_status <> 'collage_ready'")" = 0 ]
	# what the jobs wrote is the unde user's
	[ -z "$(find "$W/log" "$W/metrics" -type f ! -user unde)" ]
}
