# t/lib/ha.bash — a loopback shard cluster for one bats file: etcd ×3 and
# Patroni ×2 (PostgreSQL 15) via `unde-cluster local up`, on ports the OS
# picks, in a directory of its own under /tmp.
#
#   load lib/ha
#   setup_file()    { ha_start; }      # exports UNDE_CLUSTER_* (cluster.env)
#   teardown_file() { ha_stop; }
#
# ha_start waits (generously: 120 s for the leader, 180 s for the replica)
# and fails with the members' logs on stderr. A watchdog stops the cluster
# when bats dies without running teardown_file. Needs root (Patroni runs
# PostgreSQL as the postgres user); ha_skip_unless_drills skips otherwise.

# The cluster drills are slow (bring-up ~10 s, each failover ~10-20 s): they
# run when UNDE_DRILLS=1 (t/check-all's make check pass, make check-drills).
# common.bash scrubs UNDE_*, so a test file reads it before loading common
# and passes it here.
ha_skip_unless_drills() {
	[[ ${1:-} = 1 ]] || skip "cluster drill: set UNDE_DRILLS=1 (make check-drills)"
	[[ $(id -u) = 0 ]] || skip "cluster drill: needs root (PostgreSQL runs as postgres)"
	command -v patroni >/dev/null && command -v etcd >/dev/null || skip "patroni or etcd not installed"
}

_ha_watchdog() {
	local dir=$1 pid=$2
	(
		trap '' HUP INT TERM
		while [ -f "$dir/cluster.env" ] && kill -0 "$pid" 2>/dev/null; do
			sleep 1
		done
		[ -f "$dir/cluster.env" ] && unde-cluster local down "$dir"
		rm -rf -- "$dir" "$dir.err"
	) </dev/null >/dev/null 2>&1 3>&- &
}

ha_start() {
	local dir
	dir=$(mktemp -d /tmp/unde-ha.XXXXXX) || return 1
	export HA_DIR=$dir
	if ! unde-cluster local up "$dir" >/dev/null 2>"$dir.err"; then
		echo "ha_start: the cluster did not come up:" >&2
		cat "$dir.err" >&2
		tail -n 30 "$dir"/n*/patroni.log "$dir"/e*/etcd.log >&2 2>/dev/null
		ha_stop
		return 1
	fi
	set -a
	# shellcheck disable=SC1091
	. "$dir/cluster.env"
	set +a
	_ha_watchdog "$dir" "${BATS_ROOT_PID:-$$}"
}

# ha_db NAME — create database NAME on the leader; print the cluster URL of it
# (multi-host, target_session_attrs=read-write).
ha_db() {
	psql -XAtq "$UNDE_CLUSTER_URL" -c "CREATE DATABASE $1" >/dev/null || return 1
	echo "${UNDE_CLUSTER_URL/\/postgres\?//$1?}"
}

# ha_leader — the leader's name (n1 or n2).
ha_leader() {
	unde-cluster leader | jq -r .leader
}

# ha_wait_replica_streaming [TIMEOUT] — until a replica runs with lag 0.
ha_wait_replica_streaming() {
	local timeout=${1:-180} start=$SECONDS
	while ((SECONDS - start < timeout)); do
		unde-cluster status 2>/dev/null |
			jq_e '[.members[] | select(.role == "replica" and .state == "running" and .lag == 0)] | length == 1' \
				>/dev/null && return 0
		sleep 0.5
	done
	echo "ha_wait_replica_streaming: no replica at lag 0 within ${timeout}s" >&2
	unde-cluster status >&2 || true
	return 1
}

# ha_wait_node_replica NODE [TIMEOUT] — until NODE's own Patroni answers
# that it runs as a replica, then until the cluster sees a replica at lag 0.
# After a crash the killed member's key in etcd says "running, lag 0" until
# its TTL runs out, so the cluster's view alone cannot tell a restarted
# member from the one that died; the process's own REST API can.
ha_wait_node_replica() {
	local node=$1 timeout=${2:-180} start=$SECONDS
	local -a rest
	read -ra rest <<<"$UNDE_CLUSTER_REST"
	local url=${rest[${node#n} - 1]}
	while ((SECONDS - start < timeout)); do
		if curl -s -m 3 "$url/patroni" 2>/dev/null |
			jq_e '.role == "replica" and .state == "running"' >/dev/null 2>&1; then
			ha_wait_replica_streaming $((timeout - (SECONDS - start) + 1))
			return
		fi
		sleep 0.5
	done
	echo "ha_wait_node_replica: $node is not running as a replica within ${timeout}s" >&2
	curl -s -m 3 "$url/patroni" >&2 || true
	return 1
}

ha_stop() {
	local dir=${HA_DIR:-}
	case $dir in
	/tmp/unde-ha.*) ;;
	*) return 0 ;;
	esac
	unde-cluster local down "$dir" >/dev/null 2>&1 || true
	rm -rf -- "$dir" "$dir.err"
	unset HA_DIR
}
