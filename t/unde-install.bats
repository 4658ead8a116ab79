#!/usr/bin/env bats
# unde-install (make install-system): a host laid out under a root prefix —
# crontab, env template, directories, logrotate, systemd units — and, as
# root on a throwaway CI machine, the unde user.

load lib/common

setup() {
	R=$(unde_tmpdir)/root
	mkdir -p "$R"
}

# action PATH — what the last run said it did to PATH.
action() { jq -r --arg p "$1" 'select(.path == $p) | .action' <<<"$output"; }

@test "--help and --version answer on stdout" {
	run unde-install --help
	assert_success
	assert_output --partial 'usage: unde-install'
	run unde-install --version
	assert_output --regexp '^unde-install [0-9.]+$'
}

@test "a root prefix gets the crontab, the env template, the directories, logrotate and the units" {
	run --separate-stderr unde-install --root "$R" --role catalog
	assert_success
	[ -f "$R/etc/cron.d/unde" ]
	assert_equal "$(stat -c %a "$R/etc/cron.d/unde")" 644
	cmp "$UNDE_TOP_SRCDIR/etc/unde/catalog.env.example" "$R/etc/unde/unde.env"
	assert_equal "$(stat -c %a "$R/etc/unde/unde.env")" 640
	assert_equal "$(stat -c %a "$R/etc/unde/pgpass")" 600
	for d in var/lib/unde var/log/unde var/lib/node_exporter/textfile_collector etc/unde/httpd; do
		[ -d "$R/$d" ] || fail "no $d"
	done
	[ -f "$R/etc/logrotate.d/unde" ]
	[ -f "$R/etc/systemd/system/unde-httpd-mood.socket" ]
	[ -f "$R/etc/systemd/system/unde-httpd-mood@.service" ]
	[ -f "$R/etc/systemd/system/prometheus-node-exporter.service.d/unde-textfile.conf" ]
	[ -f "$R/etc/unde/httpd/mood.routes" ]
	# every job line is the source's; only PATH names the commands' directory
	diff <(grep -v '^PATH=' "$UNDE_TOP_SRCDIR/cron/unde") <(grep -v '^PATH=' "$R/etc/cron.d/unde")
	# (the source's bin/ as unde-install sees it: distcheck's srcdir is
	# spelled with "..", which unde-install resolves)
	grep -qx "PATH=$(cd "$UNDE_TOP_SRCDIR/bin" && pwd):/usr/local/bin:/usr/bin:/bin" "$R/etc/cron.d/unde"
	assert_equal "$(action /etc/cron.d/unde)" created
	assert_equal "$(action /etc/unde/unde.env)" created
}

@test "a second run keeps everything, and never touches an edited env file" {
	unde-install --root "$R" >/dev/null 2>&1
	echo 'STAGING_DB_URL=postgresql://apify@db/unde_staging' >>"$R/etc/unde/unde.env"
	cp "$R/etc/unde/unde.env" "$BATS_TEST_TMPDIR/edited"
	run --separate-stderr unde-install --root "$R" --role shard
	assert_success
	cmp "$BATS_TEST_TMPDIR/edited" "$R/etc/unde/unde.env"
	assert_equal "$(jq -r .action <<<"$output" | sort -u)" kept
}

@test "a changed crontab or unit is brought up to date" {
	unde-install --root "$R" >/dev/null 2>&1
	echo '# stray' >>"$R/etc/cron.d/unde"
	echo '# stray' >>"$R/etc/logrotate.d/unde"
	run --separate-stderr unde-install --root "$R"
	assert_equal "$(action /etc/cron.d/unde)" updated
	assert_equal "$(action /etc/logrotate.d/unde)" updated
	run grep -c stray "$R/etc/cron.d/unde" "$R/etc/logrotate.d/unde"
	refute_output --partial ':1'
}

@test "each role gets its own template" {
	for role in catalog shard services recognition dialogue; do
		rm -rf "$R" && mkdir -p "$R"
		unde-install --root "$R" --role "$role" >/dev/null 2>&1
		cmp "$UNDE_TOP_SRCDIR/etc/unde/$role.env.example" "$R/etc/unde/unde.env"
	done
}

@test "an unknown role is a usage error and a missing template directory a configuration error" {
	run unde-install --root "$R" --role nosuch
	assert_failure 64
	run unde-install --root "$R" --share "$R/nowhere"
	assert_failure 78
	[ ! -e "$R/etc/cron.d/unde" ]
}

@test "every setting the commands read is in a template, with secrets empty" {
	vars=$(grep -rhoE '(conf_str|conf_require|conf_long|conf_double|conf_bool|setting_long|setting_ms|http_setting)\(([^,"]*, *)?"[A-Z0-9_]+"' \
		"$UNDE_TOP_SRCDIR"/src "$UNDE_TOP_SRCDIR"/lib --include='*.c' | grep -oE '"[A-Z0-9_]+"' | tr -d '"' | sort -u)
	vars="$vars DOWNLOAD_CLAIM_TTL COLLAGE_CLAIM_TTL SHARD_0_DB_URL"
	for v in $vars; do
		case $v in UNDE_ONLINE | UNDE_JOB_STATS | UNDE_METRICS_DIR | UNDE_ENV_FILE | TOMBSTONE_COPY_FILE_TEST) continue ;; esac
		grep -qE "^#?$v=" "$UNDE_TOP_SRCDIR"/etc/unde/*.env.example || fail "$v is in no template"
	done
	for s in APIFY_TOKEN S3_ACCESS_KEY S3_SECRET_KEY MASTER_ENCRYPTION_KEY MASTER_ENCRYPTION_KEY_PREVIOUS; do
		run grep -hE "^$s=." "$UNDE_TOP_SRCDIR"/etc/unde/*.env.example
		assert_failure
	done
	run grep -hE '^[A-Z_]+_DB_URL=postgresql://[^@]*:[^@]*@' "$UNDE_TOP_SRCDIR"/etc/unde/*.env.example
	assert_failure
}

@test "the templates are read by the commands without a parse error" {
	for role in catalog shard services recognition dialogue; do
		# 69 (database unreachable) or 78 naming an empty secret, never a
		# parse error of the file itself
		run --separate-stderr env STAGING_DB_URL=postgresql://u@127.0.0.1:1/x \
			unde-db status staging --env-file "$UNDE_TOP_SRCDIR/etc/unde/$role.env.example"
		[[ "$stderr" != *"$role.env.example:"* ]] || fail "$role: $stderr"
		assert_failure 69
	done
}

@test "make install and then the installed unde-install lay out a DESTDIR" {
	[ -f "$UNDE_TOP_BUILDDIR/Makefile" ] || skip "not a configured build tree"
	D=$(unde_tmpdir)/dest
	make -s -C "$UNDE_TOP_BUILDDIR" install DESTDIR="$D" >/dev/null
	bindir=$(make -s -C "$UNDE_TOP_BUILDDIR" --no-print-directory -f Makefile -f - print-bindir <<<'print-bindir: ; @echo $(bindir)')
	pkgdatadir=$(make -s -C "$UNDE_TOP_BUILDDIR" --no-print-directory -f Makefile -f - print-p <<<'print-p: ; @echo $(pkgdatadir)')
	[ -x "$D$bindir/unde-download" ]
	[ -f "$D$pkgdatadir/cron/unde" ]
	[ -f "$D$pkgdatadir/sql/roles/staging.sql" ]
	[ -f "$D$pkgdatadir/etc/prometheus/rules/unde.rules.yml" ]
	run --separate-stderr "$D$bindir/unde-install" --root "$D" --bindir "$bindir"
	assert_success
	[ -f "$D/etc/cron.d/unde" ]
	grep -qx "PATH=$bindir:/usr/local/bin:/usr/bin:/bin" "$D/etc/cron.d/unde"
	[ -f "$D/etc/unde/unde.env" ]
}

@test "as root on a throwaway machine the unde user is created once and owns its directories" {
	[ "${UNDE_TEST_SYSTEM_INSTALL:-}" = 1 ] || skip "set UNDE_TEST_SYSTEM_INSTALL=1 on a throwaway machine (writes /etc)"
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	run --separate-stderr unde-install
	assert_success
	getent passwd unde
	assert_equal "$(stat -c %U /var/log/unde)" unde
	assert_equal "$(stat -c %U:%G /etc/unde/unde.env)" root:unde
	run --separate-stderr unde-install
	assert_success
	assert_equal "$(action user:unde)" kept
	assert_equal "$(getent passwd unde | wc -l)" 1
	# a cron line, run as cron would: as unde, with the crontab's settings
	run runuser -u unde -- env -i PATH="$UNDE_TOP_SRCDIR/bin:/usr/bin:/bin" UNDE_LOG_DIR=/var/log/unde \
		UNDE_METRICS_DIR=/var/lib/node_exporter/textfile_collector \
		unde-job cleanup_temp_files -- sh -c 'test ! -d /var/lib/unde/objects || find /var/lib/unde/objects -name ".*.tmp.*" -type f -mmin +60 -delete'
	assert_success
	[ -f /var/lib/node_exporter/textfile_collector/unde_job_cleanup_temp_files.prom ]
}
