/* status.c — `status [--shard N]`: what §14 and §19 watch on a shard.
 * Sizes (messages, embedded messages, users, heap, HNSW index — the sum
 * over the 64 partitions' graphs), replication (lag in seconds on a
 * replica, per-standby lag on a primary), and the spec's new-shard trigger:
 * HNSW index > 80 GB ("50% of the available working set"). The same
 * figures go to $UNDE_METRICS_DIR/unde-shard.prom (hnsw_index_size_bytes,
 * tmpfs_usage_percent when the data directory is a local tmpfs,
 * replication_lag_seconds, …). */
#include "config.h"

#include <unistd.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

#define TRIGGER_BYTES (80.0 * 1024 * 1024 * 1024)

static const char status_sql[] =
	"SELECT (SELECT count(*) FROM messages),"
	" (SELECT count(*) FROM messages WHERE embedding IS NOT NULL),"
	" (SELECT count(*) FROM conversations),"
	" (SELECT COALESCE(sum(pg_table_size(relid)), 0) FROM pg_partition_tree('messages') WHERE isleaf),"
	" (SELECT COALESCE(sum(pg_relation_size(relid)), 0) FROM pg_partition_tree('idx_messages_embedding') WHERE isleaf),"
	" pg_database_size(current_database()),"
	" pg_is_in_recovery(),"
	/* a replica that replayed all it received is 0 behind, however long
	 * the primary has been idle (not "now minus the last replay") */
	" CASE WHEN pg_is_in_recovery() THEN"
	"  CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL"
	"   AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
	"  ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END END,"
	" (SELECT count(*) FROM pg_stat_replication),"
	" (SELECT max(EXTRACT(EPOCH FROM replay_lag)) FROM pg_stat_replication),"
	" (SELECT count(*) FROM user_keys),"
	" (SELECT count(*) FROM messages WHERE needs_enrichment),"
	" (SELECT setting FROM pg_settings WHERE name = 'data_directory'),"
	/* WAL the slots hold back on the primary (§19: > 20 GB, the NVMe fills) */
	" CASE WHEN NOT pg_is_in_recovery() THEN (SELECT COALESCE(max(pg_wal_lsn_diff("
	"  pg_current_wal_lsn(), restart_lsn)), 0) FROM pg_replication_slots) END";

/* Percent used of the tmpfs holding dir, or -1 when it is not a local tmpfs. */
static double tmpfs_percent(const char *dir)
{
	if (!dir || !*dir)
		return -1;
	FILE *m = setmntent("/proc/mounts", "r");
	if (!m)
		return -1;
	struct mntent *e;
	size_t best = 0;
	int is_tmpfs = 0;
	while ((e = getmntent(m))) {
		size_t l = strlen(e->mnt_dir);
		if (!strncmp(dir, e->mnt_dir, l) && (dir[l] == '/' || dir[l] == '\0' || l == 1) && l >= best) {
			best = l;
			is_tmpfs = !strcmp(e->mnt_type, "tmpfs");
		}
	}
	endmntent(m);
	struct statvfs v;
	if (!is_tmpfs || statvfs(dir, &v) != 0 || v.f_blocks == 0)
		return -1;
	return 100.0 * (double)(v.f_blocks - v.f_bfree) / (double)v.f_blocks;
}

static int status_one(PGconn *c, long sid, double trigger, struct metrics *m)
{
	PGresult *r = pg_query(c, status_sql, 0, NULL);
	if (!r)
		return -1;
	double hnsw = strtod(PQgetvalue(r, 0, 4), NULL);
	int replica = PQgetvalue(r, 0, 6)[0] == 't';
	json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:b}",
			      "shard_id", (int)sid, "role", replica ? "replica" : "primary",
			      "messages", (json_int_t)shard_pg_long(r, 0, 0, 0),
			      "embedded_messages", (json_int_t)shard_pg_long(r, 0, 1, 0),
			      "users", (json_int_t)shard_pg_long(r, 0, 2, 0),
			      "heap_bytes", (json_int_t)strtoll(PQgetvalue(r, 0, 3), NULL, 10),
			      "hnsw_index_size_bytes", hnsw,
			      "database_bytes", (json_int_t)strtoll(PQgetvalue(r, 0, 5), NULL, 10),
			      "user_keys", (json_int_t)shard_pg_long(r, 0, 10, 0),
			      "needs_enrichment", (json_int_t)shard_pg_long(r, 0, 11, 0),
			      "new_shard_needed", hnsw > trigger);
	json_object_set_new(o, "new_shard_trigger_bytes", json_real(trigger));
	char labels[64];
	snprintf(labels, sizeof labels, "shard=\"%ld\"", sid);
	if (replica) {
		double lag = strtod(PQgetvalue(r, 0, 7), NULL);
		json_object_set_new(o, "replication_lag_seconds", json_real(lag));
		metrics_add(m, "replication_lag_seconds", "gauge", "Seconds since the last replayed transaction", labels, lag);
	} else {
		json_object_set_new(o, "replicas", json_integer(shard_pg_long(r, 0, 8, 0)));
		if (!PQgetisnull(r, 0, 9)) {
			double lag = strtod(PQgetvalue(r, 0, 9), NULL);
			json_object_set_new(o, "replication_lag_seconds", json_real(lag));
			metrics_add(m, "replication_lag_seconds", "gauge", "Largest replay lag of the standbys", labels, lag);
		}
		metrics_add(m, "replica_up", "gauge", "Streaming standbys connected", labels, (double)shard_pg_long(r, 0, 8, 0));
		double slot = strtod(PQgetvalue(r, 0, 13), NULL);
		json_object_set_new(o, "replication_slot_wal_bytes", json_real(slot));
		metrics_add(m, "replication_slot_wal_bytes", "gauge", "WAL held back by the replication slots", labels, slot);
	}
	double tp = tmpfs_percent(PQgetisnull(r, 0, 12) ? NULL : PQgetvalue(r, 0, 12));
	if (tp >= 0) {
		json_object_set_new(o, "tmpfs_usage_percent", json_real(tp));
		metrics_add(m, "tmpfs_usage_percent", "gauge", "Used share of the tmpfs holding the data directory", labels, tp);
	}
	metrics_add(m, "hnsw_index_size_bytes", "gauge", "Size of the HNSW index over all partitions (new shard above 80 GB)", labels, hnsw);
	metrics_add(m, "shard_new_shard_needed", "gauge", "1 when the HNSW index passed the new-shard trigger", labels, hnsw > trigger);
	metrics_add(m, "shard_messages", "gauge", "Messages stored", labels, (double)shard_pg_long(r, 0, 0, 0));
	metrics_add(m, "shard_users", "gauge", "Users (conversations) stored", labels, (double)shard_pg_long(r, 0, 2, 0));
	metrics_add(m, "shard_heap_bytes", "gauge", "Heap size of the messages partitions", labels, strtod(PQgetvalue(r, 0, 3), NULL));
	metrics_add(m, "enrichment_backfill_pending", "gauge", "Replayed messages awaiting enrichment", labels, (double)shard_pg_long(r, 0, 11, 0));
	PQclear(r);
	shard_print(o);
	return 0;
}

static const char usage[] = "unde-shard status [--shard N | --url URL] [--trigger-bytes B]\n";

enum { OPT_TRIGGER = 1 };

/* status's own option, --trigger-bytes B: data is the trigger, a positive
 * number (else the parser reports a bad value for it). */
static int status_option(void *data, int id, const char *arg)
{
	double *trigger = data;
	char *end;
	if (id != OPT_TRIGGER)
		return -1;
	*trigger = strtod(arg, &end);
	return (end == arg || *end || !(*trigger > 0)) ? -1 : 0;
}

/* What admin_each_shard hands each shard: the trigger and the metrics. */
struct status_run {
	double trigger;
	struct metrics *m;
};

static int status_each(PGconn *c, long sid, void *data)
{
	struct status_run *r = data;
	return status_one(c, sid, r->trigger, r->m) ? EX_SOFTWARE : 0;
}

int shard_cmd_status(int argc, char **argv)
{
	static const struct filter_option o[] = {
		{ "trigger-bytes", 0, "B", "the new-shard trigger, HNSW index bytes (default 80 GB)",
		  .id = OPT_TRIGGER },
		{ 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct status_run run = { .trigger = TRIGGER_BYTES };
	struct admin_opts a = { .name = "unde-shard status", .usage = usage,
				.summary = "Sizes, replication and the new-shard trigger of each shard.\n",
				.options = o, .own = status_option, .data = &run.trigger, .x = &x,
				.no_operands = 1 };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	run.m = metrics_new();
	int worst = admin_each_shard(&x, status_each, &run);
	metrics_write_default(run.m, "unde-shard");
	metrics_free(run.m);
	sctx_close(&x);
	return worst;
}
