# etc rules

# The host's configuration templates, installed under $(pkgdatadir)/etc/
# with their paths kept; unde-install lays them out on a host (make
# install-system), the database and monitoring ones are copied by hand as
# man/unde.7's deployment section says.
unde_skeldir = $(pkgdatadir)
nobase_dist_unde_skel_DATA = \
	etc/unde/catalog.env.example \
	etc/unde/shard.env.example \
	etc/unde/services.env.example \
	etc/unde/recognition.env.example \
	etc/unde/dialogue.env.example \
	etc/logrotate.d/unde \
	etc/systemd/prometheus-node-exporter.service.d/unde-textfile.conf \
	etc/systemd/unde-httpd-context.socket \
	etc/systemd/unde-httpd-context@.service \
	etc/systemd/unde-httpd-mood.socket \
	etc/systemd/unde-httpd-mood@.service \
	etc/systemd/unde-httpd-persona.socket \
	etc/systemd/unde-httpd-persona@.service \
	etc/systemd/unde-httpd-rerank.socket \
	etc/systemd/unde-httpd-rerank@.service \
	etc/systemd/unde-httpd-voice.socket \
	etc/systemd/unde-httpd-voice@.service \
	etc/systemd/unde-httpd-ximilar.socket \
	etc/systemd/unde-httpd-ximilar@.service \
	etc/httpd/context.routes \
	etc/httpd/mood.routes \
	etc/httpd/persona.routes \
	etc/httpd/rerank.routes \
	etc/httpd/voice.routes \
	etc/httpd/ximilar.routes \
	etc/postgresql/staging.conf \
	etc/postgresql/staging.pg_hba.conf \
	etc/postgresql/shard-primary.conf \
	etc/postgresql/shard-primary.pg_hba.conf \
	etc/pgbouncer/pgbouncer.ini \
	etc/pgbouncer/userlist.txt.example \
	etc/prometheus/prometheus.yml \
	etc/prometheus/rules/unde.rules.yml

# make install, then the host part as root: user, /etc/cron.d/unde,
# /etc/unde/unde.env (only when absent), /var/lib/unde, /var/log/unde, the
# textfile directory, logrotate, systemd units. UNDE_ROLE picks the env
# template (catalog, shard, services).
UNDE_ROLE = catalog
install-system: install
	$(SHELL) '$(DESTDIR)$(bindir)/unde-install' --root '$(DESTDIR)/' \
		--share '$(DESTDIR)$(pkgdatadir)' --bindir '$(bindir)' --role '$(UNDE_ROLE)'
.PHONY: install-system

# hvoice: the Voice Server's WebSocket front on 8081 (spec §12).
nobase_dist_unde_skel_DATA += etc/systemd/unde-httpd-voice-ws.socket \
	etc/systemd/unde-httpd-voice-ws@.service etc/httpd/voice-ws.routes
# unde-llm (hllm): POST /chat on 10.1.0.17
nobase_dist_unde_skel_DATA += etc/systemd/unde-httpd-llm.socket \
	etc/systemd/unde-httpd-llm@.service \
	etc/httpd/llm.routes
# Recognition Orchestrator (issue 15): its routes and units.
nobase_dist_unde_skel_DATA += \
	etc/httpd/recognize.routes \
	etc/systemd/unde-httpd-recognize.socket \
	etc/systemd/unde-httpd-recognize@.service
