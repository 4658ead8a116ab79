#!/usr/bin/env bats
# etc/prometheus/: §19's scrape targets and one alert per metric of its
# table, as promtool reads them; node_exporter pointed at unde-job's
# textfile directory.

load lib/common

P="$UNDE_TOP_SRCDIR/etc/prometheus"

# §19's table, every metric of it.
SPEC_METRICS="apify_scraper_duration apify_scraper_errors photo_download_errors
photo_download_pending_count photo_download_speed_mbps ximilar_sync_errors ximilar_sync_pending_count
collage_queue_size collage_processing_errors availability_poll_success sync_job_success
recognition_pipeline_duration_ms recognition_orchestrator_errors recognition_queue_size
ximilar_gw_detect_latency_ms ximilar_gw_search_latency_ms ximilar_gw_errors ximilar_gw_rate_limit_hits
llm_reranker_latency_ms llm_reranker_errors llm_reranker_cost_usd llm_orchestrator_response_time_ms
llm_orchestrator_errors llm_orchestrator_cost_usd llm_orchestrator_provider_fallbacks
llm_orchestrator_queue_size llm_orchestrator_context_pack_time_ms staging_db_disk_usage
mood_agent_latency_ms mood_agent_errors voice_tts_latency_ms voice_elevenlabs_errors voice_ws_connections
context_agent_latency_ms context_agent_errors context_agent_weather_cache_hit persona_agent_latency_ms
persona_agent_errors persona_feedback_signals_total persona_signal_discard_rate persona_stage_upgrades_total
persona_temp_blocks_active tmpfs_usage_percent hnsw_index_size_bytes replication_lag_seconds replica_up
replay_requests_total_rate enrichment_backfill_rate replication_slot_wal_bytes etcd_server_has_leader
hybrid_search_latency_ms embedding_ingestion_errors memory_snippet_null_rate user_knowledge_decrypt_errors
user_knowledge_decrypt_latency_ms pgbackrest_last_full_age_hours basebackup_last_age_hours
local_snapshot_age_hours user_media_bucket_size object_storage_size"

# Metrics the spec gives no alert threshold ("TBD", info metrics).
NO_THRESHOLD="llm_reranker_cost_usd llm_orchestrator_cost_usd persona_feedback_signals_total persona_stage_upgrades_total"

@test "promtool accepts the Prometheus configuration with its rule file" {
	d=$(unde_tmpdir)
	mkdir -p "$d/rules"
	cp "$P/rules/unde.rules.yml" "$d/rules/"
	sed "s|/etc/prometheus/rules/|$d/rules/|" "$P/prometheus.yml" >"$d/prometheus.yml"
	run promtool check config "$d/prometheus.yml"
	assert_success
	assert_output --partial 'SUCCESS'
}

@test "promtool accepts the alert rules" {
	run promtool check rules "$P/rules/unde.rules.yml"
	assert_success
}

@test "every metric of section 19's table has an alert, or a recording rule when it has no threshold" {
	for m in $SPEC_METRICS; do
		case " $NO_THRESHOLD " in
		*" $m "*) grep -qE "(expr|record): .*${m}" "$P/rules/unde.rules.yml" || fail "no recording rule for $m" ;;
		*) grep -qx "          spec_metric: $m" "$P/rules/unde.rules.yml" || fail "no alert for $m" ;;
		esac
	done
}

@test "every scrape target of section 19 is configured" {
	for t in 10.1.0.7:9100 10.1.0.13:9100 10.1.0.14:9100 10.1.0.8:9100 10.1.0.9:9100 10.1.0.15:9100 \
		10.1.0.16:9100 10.1.0.17:9100 10.1.1.3:9100 10.1.0.11:9100 10.1.0.12:9100 10.1.0.19:9100 \
		10.1.0.21:9100 dubai-shard-0:9100 dubai-shard-0:9187 10.1.1.10:9100 10.1.1.10:9187 \
		dubai-shard-0:2379 10.1.1.10:2379 10.1.1.20:2379 10.1.1.3:9187; do
		grep -q "'$t'" "$P/prometheus.yml" || fail "no target $t"
	done
}

@test "the error-ratio alert fires above 10% and stays quiet below, as the rules are written" {
	d=$(unde_tmpdir)
	cat >"$d/test.yml" <<-EOF
		rule_files:
		  - $P/rules/unde.rules.yml
		evaluation_interval: 1m
		tests:
		  - interval: 1m
		    input_series:
		      - series: 'photo_download_error_ratio{job="node-photo-downloader",exported_job="download_pending"}'
		        values: '0.11x5'
		      - series: 'photo_download_error_ratio{job="node-photo-downloader",exported_job="download_retry"}'
		        values: '0.09x5'
		      - series: 'photo_download_pending_count{job="node-photo-downloader"}'
		        values: '6000x40'
		    alert_rule_test:
		      - eval_time: 2m
		        alertname: PhotoDownloadErrors
		        exp_alerts:
		          - exp_labels:
		              severity: warning
		              spec_metric: photo_download_errors
		              job: node-photo-downloader
		              exported_job: download_pending
		            exp_annotations:
		              summary: "more than 10% of a download run's photos failed"
		      - eval_time: 10m
		        alertname: PhotoDownloadPendingHigh
		        exp_alerts: []
		      - eval_time: 35m
		        alertname: PhotoDownloadPendingHigh
		        exp_alerts:
		          - exp_labels:
		              severity: warning
		              spec_metric: photo_download_pending_count
		              job: node-photo-downloader
		            exp_annotations:
		              summary: "more than 5000 products wait for their photos"
	EOF
	run promtool test rules "$d/test.yml"
	assert_success
}

@test "node_exporter's textfile collector is pointed at unde-job's directory" {
	f=$UNDE_TOP_SRCDIR/etc/systemd/prometheus-node-exporter.service.d/unde-textfile.conf
	grep -qx 'ExecStart=' "$f"
	dir=$(sed -n 's/^ExecStart=.*--collector.textfile.directory=\([^ ]*\).*/\1/p' "$f")
	assert_equal "$dir" "$(sed -n 's/^UNDE_METRICS_DIR=//p' "$UNDE_TOP_SRCDIR/cron/unde")"
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	d=$(unde_tmpdir)
	mkdir -p "$d/prometheus-node-exporter.service.d"
	cp /lib/systemd/system/prometheus-node-exporter.service "$d/" 2>/dev/null || skip "no node_exporter unit"
	cp "$f" "$d/prometheus-node-exporter.service.d/"
	run systemd-analyze verify "$d/prometheus-node-exporter.service"
	refute_output --partial 'unde-textfile.conf'
}
