# The shard's high availability and backups (spec §14, §18): unde-cluster
# (Patroni + etcd glue, failback, checks), its config templates, tests.
dist_bin_SCRIPTS += bin/unde-cluster
dist_man_MANS += man/unde-cluster.1
nobase_dist_unde_skel_DATA += etc/patroni/shard.yml.in etc/etcd/etcd.yml.in etc/httpd/shard.routes \
	etc/pgbackrest/pgbackrest.conf
TESTS += t/unde-cluster.bats

# The slow cluster drills (failover, failback, restore) run only with
# UNDE_DRILLS=1: t/check-all's make check pass sets it, and this target.
check-drills:
	UNDE_DRILLS=1 $(MAKE) check TESTS=t/unde-cluster.bats
.PHONY: check-drills
