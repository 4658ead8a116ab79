# sql rules: the numbered migrations of the three databases, installed under
# $(pkgdatadir)/sql/<database>/ (UNDE_SQLDIR), where `unde-db migrate` finds
# them. Automake has no wildcards: list each new file here.

sqlstagingdir = $(pkgdatadir)/sql/staging
dist_sqlstaging_DATA = \
	sql/staging/0001_raw_tables.sql \
	sql/staging/0002_image_claims.sql \
	sql/staging/0003_image_error_kind.sql

sqlproductiondir = $(pkgdatadir)/sql/production
dist_sqlproduction_DATA = \
	sql/production/0001_products.sql \
	sql/production/0002_recognition_requests.sql \
	sql/production/0003_routing_table.sql \
	sql/production/0004_deleted_messages_registry.sql \
	sql/production/0005_malls_stores_events.sql \
	sql/production/0006_deleted_users_registry.sql

sqlsharddir = $(pkgdatadir)/sql/shard
dist_sqlshard_DATA = \
	sql/shard/0001_chat_history.sql \
	sql/shard/0002_user_knowledge.sql \
	sql/shard/0003_persona_state.sql \
	sql/shard/0004_persona_profiles.sql \
	sql/shard/0005_enrichment_backfill.sql \
	sql/shard/0006_retrieval_binary_prefilter.sql
# issue 13: which model embedded each message (hshard)
dist_sqlshard_DATA += sql/shard/0007_embedding_model.sql

# Roles and grants (spec §6, §14), applied with psql after the migrations.
sqlrolesdir = $(pkgdatadir)/sql/roles
dist_sqlroles_DATA = sql/roles/staging.sql sql/roles/shard.sql

# h16: the catalog's way to production (unde-availability's budget,
# unde-ximilar-sync's records and descriptors, unde-sync's available flag)
dist_sqlstaging_DATA += sql/staging/0005_availability_budget.sql \
	sql/staging/0006_ximilar_records.sql
dist_sqlproduction_DATA += sql/production/0010_products_available.sql \
	sql/production/0011_product_descriptors.sql

# unde-persona (hpersona)
dist_sqlshard_DATA += sql/shard/0010_persona_signals.sql

# hmem (issue 9): the forget registry; the erasure compaction queue
dist_sqlproduction_DATA += sql/production/0035_forgotten_messages_registry.sql
dist_sqlshard_DATA += sql/shard/0020_erasure_compaction.sql
dist_sqlshard_DATA += sql/shard/0021_fts_per_conversation.sql
dist_sqlshard_DATA += sql/shard/0022_prefilter_covers_model.sql
# unde-llm (hllm): the density cap's per-answer record
dist_sqlshard_DATA += sql/shard/0025_llm_answer_meta.sql
# hha2 (issue 19): verify-and-replay's server-side rate limit
dist_sqlshard_DATA += sql/shard/0030_replay_rate_limit.sql
dist_sqlshard_DATA += sql/shard/0040_store_enrichment.sql
# issue 9 (hfts): tsv kept in the row, not in TOAST, for the full-text branch
dist_sqlshard_DATA += sql/shard/0045_tsv_inline.sql
# issue 15: where a store is, for recognition's "in stock in KZ stores" (hrecog2)
dist_sqlproduction_DATA += sql/production/0045_stores_location.sql
dist_sqlproduction_DATA += sql/production/0050_recognition_caller_request_id.sql
# issue 9: the vector branch as a C function (src/shard/pg/unde_vector.c)
dist_sqlshard_DATA += sql/shard/0050_vector_topk_native.sql
