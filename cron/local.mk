# cron rules
