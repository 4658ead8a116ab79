# bench rules
# hmood: the Mood and Context agents through unde-httpd.
EXTRA_DIST += bench/mood/run bench/mood/routes
