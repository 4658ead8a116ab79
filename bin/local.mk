# Shell commands that compose the C ones: the cron job wrapper, the local
# environment. install-deps is for a fresh machine and is not installed.
dist_bin_SCRIPTS += bin/unde-job bin/unde-dev
dist_bin_SCRIPTS += bin/unde-install bin/unde-demo
dist_noinst_SCRIPTS += bin/install-deps
