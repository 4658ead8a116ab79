# bench rules

# bench/svc: a sibling call kept-alive vs a fresh connection (issue 10).
EXTRA_DIST += bench/svc/run
# hmood: the Mood and Context agents through unde-httpd.
EXTRA_DIST += bench/mood/run bench/mood/routes
