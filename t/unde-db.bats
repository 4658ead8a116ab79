#!/usr/bin/env bats
# unde-db: numbered migrations applied once, in order, each in a transaction.

load lib/common
load lib/pg

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

setup() {
	DB="t$RANDOM$RANDOM"
	URL=$(pg_createdb "$DB")
}

@test "migrate applies every staging migration and records it in schema_migrations" {
	run unde-db migrate staging --url "$URL"
	assert_success
	n=$(ls "$UNDE_TOP_SRCDIR"/sql/staging/*.sql | wc -l)
	assert_equal "$(printf '%s\n' "$output" | jq -r 'select(.status=="applied now") | .version' | wc -l)" "$n"
	run psql -XAt "$URL" -c "select count(*) from schema_migrations"
	assert_output "$n"
	run psql -XAt "$URL" -c "select to_regclass('raw_products') is not null"
	assert_output t
}

@test "migrating twice changes nothing the second time" {
	unde-db migrate production --url "$URL" >/dev/null
	before=$(pg_dump --schema-only "$URL" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' | md5sum)
	run unde-db migrate production --url "$URL"
	assert_success
	refute_output --partial '"applied now"'
	assert_output --partial '"already applied"'
	after=$(pg_dump --schema-only "$URL" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' | md5sum)
	assert_equal "$after" "$before"
}

@test "every migration set applies cleanly to an empty database" {
	for db in staging production shard; do
		u=$(pg_createdb "${DB}_$db")
		run unde-db migrate "$db" --url "$u"
		assert_success
		refute_output --partial '"status":"pending"'
	done
}

@test "the shard schema has 64 message partitions, the HNSW index and the tsv column" {
	unde-db migrate shard --url "$URL" >/dev/null
	run psql -XAt "$URL" -c "select count(*) from pg_inherits where inhparent = 'messages'::regclass"
	assert_output 64
	run psql -XAt "$URL" -c "select count(*) from pg_indexes where indexdef ilike '%using hnsw%' and tablename = 'messages'"
	assert_output 1
	run psql -XAt "$URL" -c "select attgenerated from pg_attribute where attrelid = 'messages'::regclass and attname = 'tsv'"
	assert_output s
}

@test "status lists applied and pending migrations per database" {
	run unde-db status staging --url "$URL"
	assert_success
	assert_output --partial '"status":"pending"'
	unde-db migrate staging --url "$URL" >/dev/null
	run unde-db status staging --url "$URL"
	assert_success
	refute_output --partial '"status":"pending"'
	assert_jq 'select(.db=="staging") | .applied_at | test("^[0-9]{4}-")'
}

@test "status reads the database URLs from the environment" {
	unde-db migrate staging --url "$URL" >/dev/null
	STAGING_DB_URL="$URL" run unde-db status staging
	assert_success
	assert_output --partial '"db":"staging"'
}

@test "a failing migration is rolled back whole and stops the run with exit 65" {
	dir=$(unde_tmpdir)
	mkdir -p "$dir/staging"
	printf 'CREATE TABLE good_one (id int);\n' >"$dir/staging/0001_good.sql"
	printf 'CREATE TABLE half_done (id int);\nSELECT no_such_function();\n' >"$dir/staging/0002_bad.sql"
	printf 'CREATE TABLE never (id int);\n' >"$dir/staging/0003_after.sql"
	run --separate-stderr unde-db migrate staging --url "$URL" --sql-dir "$dir"
	assert_failure 65
	[[ "$stderr" == *'"msg":"migration failed"'* ]]
	[[ "$stderr" == *'0002_bad.sql'* ]]
	run psql -XAt "$URL" -c "select to_regclass('good_one') is not null, to_regclass('half_done') is null, to_regclass('never') is null"
	assert_output 't|t|t'
	run psql -XAt "$URL" -c "select version from schema_migrations order by 1"
	assert_output 0001
}

@test "an applied migration whose file changed is reported, not re-applied" {
	dir=$(unde_tmpdir)
	mkdir -p "$dir/staging"
	printf 'CREATE TABLE a (id int);\n' >"$dir/staging/0001_a.sql"
	unde-db migrate staging --url "$URL" --sql-dir "$dir" >/dev/null
	printf 'CREATE TABLE a (id bigint);\n' >"$dir/staging/0001_a.sql"
	run unde-db migrate staging --url "$URL" --sql-dir "$dir"
	assert_failure 65
	assert_output --partial '"status":"changed"'
}

@test "a misnamed migration file is a configuration error" {
	dir=$(unde_tmpdir)
	mkdir -p "$dir/staging"
	printf 'select 1;\n' >"$dir/staging/1_oops.sql"
	run unde-db migrate staging --url "$URL" --sql-dir "$dir"
	assert_failure 78
}

@test "two concurrent migrations apply each file once" {
	unde-db migrate shard --url "$URL" >"$BATS_TEST_TMPDIR/a" &
	unde-db migrate shard --url "$URL" >"$BATS_TEST_TMPDIR/b"
	wait $!
	n=$(ls "$UNDE_TOP_SRCDIR"/sql/shard/*.sql | wc -l)
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | grep -c '"applied now"')" "$n"
}

@test "an unreachable database exits 69 and names the URL without its password" {
	run --separate-stderr unde-db migrate staging --url "postgresql://u:s3cret@127.0.0.1:1/x"
	assert_failure 69
	[[ "$stderr" == *'postgresql://u:***@127.0.0.1:1/x'* ]]
	[[ "$stderr" != *s3cret* ]]
}

@test "a missing URL variable exits 78 naming the variable" {
	run --separate-stderr unde-db migrate production
	assert_failure 78
	[[ "$stderr" == *PRODUCTION_DB_URL* ]]
}

@test "usage errors exit 64" {
	run unde-db migrate
	assert_failure 64
	run unde-db migrate nosuchdb --url "$URL"
	assert_failure 64
	run unde-db frobnicate
	assert_failure 64
}

@test "--help and --version answer on stdout" {
	run unde-db --help
	assert_success
	assert_output --partial 'Usage: unde-db migrate'
	run unde-db --version
	assert_output --regexp '^unde-db [0-9]+\.[0-9]+\.[0-9]+$'
}
