# man rules
dist_man_MANS += man/unde-db.1 man/unde.7
dist_man_MANS += man/unde-job.1 man/unde-dev.1 man/unde-demo.1
dist_man_MANS += man/unde-install.8
