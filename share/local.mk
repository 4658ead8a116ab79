# The sample catalogue (share/sample/README.md): the demo's data and the
# catalog pipeline test's, installed under $(pkgdatadir)/sample.
sampledir = $(pkgdatadir)/sample
dist_sample_DATA = share/sample/README.md share/sample/items.jsonl share/sample/stock.jsonl
dist_sample_SCRIPTS = share/sample/make-dataset share/sample/run
