# The crontab of spec §18. Installed as $(pkgdatadir)/cron/unde: cron reads
# only /etc/cron.d, whatever the prefix, so unde-install (make
# install-system) puts it there, with the commands' directory on its PATH.
crondir = $(pkgdatadir)/cron
dist_cron_DATA = cron/unde
