# bench rules

# bench/svc: a sibling call kept-alive vs a fresh connection (issue 10).
EXTRA_DIST += bench/svc/run
# hmood: the Mood and Context agents through unde-httpd.
EXTRA_DIST += bench/mood/run bench/mood/routes
# hvoice: time to the first audio chunk over WS /stream (issue 17).
EXTRA_DIST += bench/voice/run bench/voice/ttfb.py bench/voice/README.md
