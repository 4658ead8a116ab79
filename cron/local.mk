# The crontab of spec §18, installed as $(sysconfdir)/cron.d/unde.
crondir = $(sysconfdir)/cron.d
dist_cron_DATA = cron/unde
