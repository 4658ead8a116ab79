# cluster.sh — sourced by bench/shard/run: a private PostgreSQL 15 +
# pgvector cluster for the shard benchmark, kept between runs (building the
# synthetic shard takes minutes) in $BENCH_DIR (default
# /var/tmp/unde-shard-bench), listening on 127.0.0.1:$BENCH_PORT.
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
BENCH_DIR=${BENCH_DIR:-/var/tmp/unde-shard-bench}
BENCH_PORT=${BENCH_PORT:-55432}

_as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# _without_inherited_fds CMD…: run CMD with every descriptor above 2 closed.
# The bench runs under `flock /tmp/unde-bench.lock …`, whose lock lives as
# long as any process holds its descriptor: a postmaster started from
# inside it inherited that descriptor and held the shared lock until it
# was stopped (2026-12-03: every other bench on the machine waited 25 min).
_without_inherited_fds() {
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		"$@"
	)
}

bench_up() {
	if [ ! -d "$BENCH_DIR/data" ]; then
		mkdir -p "$BENCH_DIR"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$BENCH_DIR"
		_as_owner "$PG_BINDIR/initdb" -D "$BENCH_DIR/data" --auth=trust -U postgres \
			--locale=C.UTF-8 --encoding=UTF8 --no-sync >"$BENCH_DIR/initdb.log" 2>&1
		# Sized so the whole synthetic shard stays in memory, as on the
		# spec's tmpfs primary; durability off: the data is regenerated.
		cat >>"$BENCH_DIR/data/postgresql.conf" <<-CONF
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$BENCH_DIR'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			shared_buffers = 8GB
			effective_cache_size = 16GB
			maintenance_work_mem = 6GB
			max_parallel_maintenance_workers = 1
			max_wal_size = 4GB
			work_mem = 64MB
			random_page_cost = 1.1
			jit = off
		CONF
	fi
	if ! "$PG_BINDIR/pg_isready" -q -h "$BENCH_DIR" -p "$BENCH_PORT"; then
		_without_inherited_fds _as_owner "$PG_BINDIR/pg_ctl" start -w -t 120 -D "$BENCH_DIR/data" \
			-l "$BENCH_DIR/server.log" -o "-p $BENCH_PORT" >/dev/null
	fi
	export PGHOST=$BENCH_DIR PGPORT=$BENCH_PORT PGUSER=postgres
}

bench_down() {
	[ -d "$BENCH_DIR/data" ] && _as_owner "$PG_BINDIR/pg_ctl" stop -D "$BENCH_DIR/data" -m fast >/dev/null 2>&1 || true
}

# bench_vacuum DB: VACUUM ANALYZE before measuring, as a real shard's
# autovacuum would have done. Without it a partition can be left without its
# visibility map: the bench cluster's statistics are lost on an unclean stop,
# so autovacuum never learns of the load's inserts, and every index-only
# Hamming scan then fetches each heap row (2026-12-02: one of the four
# five-year users' partitions, 15,369 buffers instead of 369 per query,
# crowded p95 22.6 → 18.0 ms in the server after VACUUM). Prints the heap
# pages not all-visible before and after.
bench_vacuum() {
	local q="SELECT coalesce(sum(relpages - relallvisible), 0) || ' of ' || coalesce(sum(relpages), 0)
		FROM pg_class WHERE relkind = 'r' AND relname ~ '^messages_p[0-9]+\$'"
	echo "== VACUUM ANALYZE: heap pages of messages not all-visible before: $(psql -X -At -d "$1" -c "$q")"
	local t0; t0=$(date +%s)
	psql -X -q -d "$1" -c "VACUUM ANALYZE"
	echo "== VACUUM ANALYZE: $(( $(date +%s) - t0 )) s; not all-visible after: $(psql -X -At -d "$1" -c "$q")"
}
