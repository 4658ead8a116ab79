#!/usr/bin/env bats
# sql/roles/: the staging roles of spec §6 and the shard roles of §14, each
# running its own command through its own login and refused anything else.

load lib/common
load lib/pg
load lib/moto
load lib/catalog

setup_file() {
	pg_start
	fake_start cdn cdn.py
	moto_start unde-images
}

teardown_file() {
	catalog_teardown_file
}

setup() {
	catalog_setup r cdn
	STAGING_OWNER_URL=$STAGING_DB_URL
	psql -XAtq -v ON_ERROR_STOP=1 "$STAGING_DB_URL" -f "$UNDE_TOP_SRCDIR/sql/roles/staging.sql" >/dev/null
}

# as ROLE URL — URL with ROLE as its user instead of postgres.
as() { printf '%s\n' "${2/postgres@/$1@}"; }

# psql_as ROLE URL SQL — run SQL as ROLE; its output, or failure.
psql_as() { psql -XAtq -v ON_ERROR_STOP=1 "$(as "$1" "$2")" -c "$3"; }

# refused ROLE URL SQL — SQL as ROLE fails for want of a privilege.
refused() {
	run psql_as "$@"
	assert_failure
	assert_output --regexp 'permission denied|must be owner'
}

seed_as() {
	catalog_items "$2" zara "$CDN" jpeg-64x64 2 |
		STAGING_DB_URL=$(as "$1" "$STAGING_OWNER_URL") unde-apify --from - 2>/dev/null
}

# A dump of every privilege the staging roles hold.
grants() {
	psql -XAtq "$STAGING_OWNER_URL" -c "
		select grantee, table_name, privilege_type, '' from information_schema.role_table_grants
		 where grantee in ('apify','downloader','ximilar','scraper','collage')
		union all
		select grantee, table_name, privilege_type, column_name from information_schema.column_privileges
		 where grantee in ('apify','downloader','ximilar','scraper','collage')
		order by 1, 2, 3, 4"
}

@test "the staging roles file is idempotent and removes a grant it did not give" {
	before=$(grants)
	[ -n "$before" ]
	psql -XAtq "$STAGING_OWNER_URL" -c 'GRANT DELETE ON raw_products TO downloader'
	psql -XAtq -v ON_ERROR_STOP=1 "$STAGING_OWNER_URL" -f "$UNDE_TOP_SRCDIR/sql/roles/staging.sql" >/dev/null
	assert_equal "$(grants)" "$before"
	for r in apify downloader ximilar scraper collage; do
		assert_equal "$(psql -XAtq "$STAGING_OWNER_URL" -c "select rolcanlogin and not rolsuper from pg_roles where rolname = '$r'")" t
	done
}

@test "apify upserts products and logs its run as apify, and may not delete or claim" {
	run seed_as apify 3
	assert_success
	[ "$(sql "select count(*) from raw_products where image_status = 'pending'")" = 3 ]
	# the same items again: the ON CONFLICT UPDATE path
	run seed_as apify 3
	assert_success
	[ "$(sql 'select count(*) from raw_products')" = 3 ]
	refused apify "$STAGING_OWNER_URL" 'DELETE FROM raw_products'
	refused apify "$STAGING_OWNER_URL" "UPDATE raw_products SET claimed_by = 'x'"
	refused apify "$STAGING_OWNER_URL" 'DELETE FROM scraper_logs'
	refused apify "$STAGING_OWNER_URL" 'SELECT * FROM raw_availability'
}

@test "the downloader claims and uploads photos as downloader, and may not edit product data" {
	seed_as apify 2 >/dev/null
	STAGING_DB_URL=$(as downloader "$STAGING_OWNER_URL") run --separate-stderr unde-download --pending
	assert_success
	assert_json_line_count 2
	[ "$(sql "select count(*) from raw_products where image_status = 'uploaded' and error_message is null and claimed_by is null")" = 2 ]
	refused downloader "$STAGING_OWNER_URL" "UPDATE raw_products SET name = 'x'"
	refused downloader "$STAGING_OWNER_URL" "UPDATE raw_products SET collage_url = 'x'"
	refused downloader "$STAGING_OWNER_URL" "INSERT INTO raw_products (source, external_id, brand, name) VALUES ('a','b','c','d')"
	refused downloader "$STAGING_OWNER_URL" "INSERT INTO scraper_logs (scraper_name) VALUES ('x')"
}

@test "a failed download writes its error as downloader" {
	catalog_items 1 zara "$CDN" missing 1 | unde-apify --from - >/dev/null 2>&1
	STAGING_DB_URL=$(as downloader "$STAGING_OWNER_URL") run --separate-stderr unde-download --pending
	[ "$(sql "select image_status, error_message is not null from raw_products")" = "error|t" ]
}

@test "the collage server makes collages as collage, and may not touch the photos or Ximilar" {
	seed_as apify 2 >/dev/null
	STAGING_DB_URL=$(as downloader "$STAGING_OWNER_URL") unde-download --pending >/dev/null 2>&1
	STAGING_DB_URL=$(as collage "$STAGING_OWNER_URL") run --separate-stderr unde-collage --pending
	assert_success
	[ "$(sql "select count(*) from raw_products where image_status = 'collage_ready' and collage_url is not null")" = 2 ]
	refused collage "$STAGING_OWNER_URL" 'UPDATE raw_products SET image_urls = NULL'
	refused collage "$STAGING_OWNER_URL" "UPDATE raw_products SET ximilar_status = 'synced'"
	refused collage "$STAGING_OWNER_URL" 'DELETE FROM raw_products'
}

@test "ximilar may write only the Ximilar status columns" {
	seed_as apify 1 >/dev/null
	run psql_as ximilar "$STAGING_OWNER_URL" "UPDATE raw_products SET ximilar_status = 'synced', ximilar_synced_at = now(), updated_at = now() RETURNING ximilar_status"
	assert_success
	assert_output synced
	refused ximilar "$STAGING_OWNER_URL" "UPDATE raw_products SET image_status = 'pending'"
	refused ximilar "$STAGING_OWNER_URL" "UPDATE raw_products SET sync_status = 'synced'"
}

@test "the scraper reads and writes every table but may not change the schema or the migrations" {
	seed_as apify 1 >/dev/null
	run psql_as scraper "$STAGING_OWNER_URL" "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at) VALUES ('zara', 1, 'Z1', '[]', now()) RETURNING brand"
	assert_success
	run psql_as scraper "$STAGING_OWNER_URL" "UPDATE raw_products SET sync_status = 'synced' RETURNING sync_status"
	assert_success
	run psql_as scraper "$STAGING_OWNER_URL" "DELETE FROM raw_availability"
	assert_success
	refused scraper "$STAGING_OWNER_URL" 'CREATE TABLE t (id int)'
	refused scraper "$STAGING_OWNER_URL" 'DELETE FROM schema_migrations'
	refused scraper "$STAGING_OWNER_URL" 'DROP TABLE raw_stores'
}

# --- the shard, §14 ---------------------------------------------------------

shard_db() {
	SHARD_OWNER_URL=$(pg_createdb "sh${BATS_TEST_NUMBER}_$RANDOM")
	PROD_URL=$(pg_createdb "pr${BATS_TEST_NUMBER}_$RANDOM")
	unde-db migrate production --url "$PROD_URL" >/dev/null 2>&1
	unde-shard init --shard 0 --url "$SHARD_OWNER_URL" >/dev/null 2>&1
	psql -XAtq -v ON_ERROR_STOP=1 "$SHARD_OWNER_URL" -f "$UNDE_TOP_SRCDIR/sql/roles/shard.sql" >/dev/null
	export PRODUCTION_DB_URL=$PROD_URL
	export MASTER_ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
	USER_ID=$(uuid)
}

@test "the shard roles file is idempotent" {
	shard_db
	psql -XAtq -v ON_ERROR_STOP=1 "$SHARD_OWNER_URL" -f "$UNDE_TOP_SRCDIR/sql/roles/shard.sql" >/dev/null
	assert_equal "$(psql -XAtq "$SHARD_OWNER_URL" -c "select rolreplication from pg_roles where rolname = 'replicator'")" t
	assert_equal "$(psql -XAtq "$SHARD_OWNER_URL" -c "select count(*) from information_schema.role_table_grants where grantee = 'replicator'")" 0
}

@test "app_rw saves, searches and stores knowledge, and may not change the schema" {
	shard_db
	export SHARD_0_DB_URL=$(as app_rw "$SHARD_OWNER_URL")
	printf '{"user_id":"%s","messages":[{"id":"%s","role":"user","content":"balenciaga hoodie"}]}\n' \
		"$USER_ID" "$(uuid)" | unde-shard save >/dev/null 2>&1
	run --separate-stderr unde-shard search <<<'{"user_id":"'"$USER_ID"'","query":"balenciaga"}'
	assert_success
	jq_e '.episodes | length == 1' <<<"$output"
	echo '{"user_id":"'"$USER_ID"'","knowledge_type":"budget","data":{"max":300}}' | unde-shard knowledge put >/dev/null 2>&1
	run --separate-stderr unde-shard knowledge get <<<'{"user_id":"'"$USER_ID"'"}'
	assert_success
	jq_e '.user_knowledge[0].data.max == 300' <<<"$output"
	refused app_rw "$SHARD_OWNER_URL" 'CREATE TABLE t (id int)'
	refused app_rw "$SHARD_OWNER_URL" 'DELETE FROM schema_migrations'
}

@test "knowledge_rw stores and reads knowledge, and may not read or write the chat history" {
	shard_db
	export SHARD_0_DB_URL=$(as knowledge_rw "$SHARD_OWNER_URL")
	echo '{"user_id":"'"$USER_ID"'","knowledge_type":"budget","data":{"max":300}}' | unde-shard knowledge put >/dev/null 2>&1
	run --separate-stderr unde-shard knowledge get <<<'{"user_id":"'"$USER_ID"'"}'
	assert_success
	jq_e '.user_knowledge[0].data.max == 300' <<<"$output"
	refused knowledge_rw "$SHARD_OWNER_URL" 'SELECT count(*) FROM messages'
	refused knowledge_rw "$SHARD_OWNER_URL" "INSERT INTO conversations (user_id) VALUES (gen_random_uuid())"
	refused knowledge_rw "$SHARD_OWNER_URL" 'DELETE FROM relationship_stage'
}

@test "persona_rw writes its own state and only reads knowledge" {
	shard_db
	run psql_as persona_rw "$SHARD_OWNER_URL" "INSERT INTO relationship_stage (user_id, stage) VALUES ('$USER_ID', 1) RETURNING stage"
	assert_success
	assert_output 1
	run psql_as persona_rw "$SHARD_OWNER_URL" "INSERT INTO persona_temp_blocks (user_id, key, until, reason) VALUES ('$USER_ID', 'humor', now() + interval '1 day', 'r') RETURNING key"
	assert_success
	run psql_as persona_rw "$SHARD_OWNER_URL" 'SELECT count(*) FROM user_knowledge'
	assert_success
	refused persona_rw "$SHARD_OWNER_URL" 'DELETE FROM user_knowledge'
	refused persona_rw "$SHARD_OWNER_URL" 'SELECT count(*) FROM messages'
	refused persona_rw "$SHARD_OWNER_URL" 'UPDATE user_keys SET user_id = user_id'
}

@test "replicator may stream but reads no table" {
	shard_db
	run psql -XAtq "host=127.0.0.1 port=$PGPORT user=replicator dbname=replication replication=true" -c IDENTIFY_SYSTEM
	assert_success
	refused replicator "$SHARD_OWNER_URL" 'SELECT count(*) FROM messages'
	refused replicator "$SHARD_OWNER_URL" 'SELECT count(*) FROM user_knowledge'
}
