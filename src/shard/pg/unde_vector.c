/* unde_vector — the prefilter plan's vector branch (lib/shardc_search.c)
 * as one C function inside the shard's PostgreSQL (issue 9).
 *
 *   unde_vector_topk(messages regclass, conversation uuid, query vector,
 *                    model text, cmin int, cmax int, radius int,
 *                    metric text, k int)
 *     RETURNS TABLE(id uuid, distance float8)
 *
 * The same answer as the SQL plan's ham/cand/vbest: the conversation's
 * embeddable, not-forgotten user vectors of that model, their binary codes
 * compared with the query's (pgvector's binary_quantize), the best
 * GREATEST(cmin, LEAST(cmax, count(h <= radius) + cmin / 2)) by Hamming
 * distance — or the best cmin by Jaccard distance for a sparse query
 * (metric 'jaccard', no count rule) — re-ranked by pgvector's own
 * cosine_distance, the best k returned, nearest first.
 *
 * Why in C: at five years (15,000 codes, ~800 candidates on a crowded
 * query) the SQL executor pays an index-only scan node per code and a
 * primary-key descent (3 pages) per candidate before its heap page; it
 * cannot keep the heap TIDs the index-only scan saw. Here the partition's
 * covering B-tree of migration 0022 is walked directly (visibility checked
 * as an index-only scan checks it: the visibility map, else the heap) and
 * the candidates are fetched by those TIDs, their quals rechecked on the
 * row. bench/shard/crowded.sh measures it against the SQL plan: half the
 * time, the same answers.
 *
 * Created by unde_vector_install() (migration 0050), called by unde-db
 * after every shard migration; when this library cannot be loaded the
 * function does not exist and the SQL plan runs. Nothing here writes. */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "parser/parse_func.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"
#include "utils/varbit.h"

PG_MODULE_MAGIC;

/* The covering index this walks: migration 0022's, on messages. */
#define PREFILTER_INDEX "idx_messages_vector_prefilter_model"
#define CODE_BITS_MAX 16000

/* One code seen in the walk: where its row is, and its distance. */
typedef struct {
	ItemPointerData tid;
	double d;
} code_hit;

/* One re-ranked candidate. */
typedef struct {
	pg_uuid_t id;
	double d;
} ranked_row;

/* The partition's columns by name: its attribute numbers may differ from
 * the parent's (a partition attached with another column order). */
typedef struct {
	AttrNumber id, conv, role, emb, able, forgotten, model, bq;
} message_columns;

/* By distance, NaN last (two empty codes' Jaccard distance). */
static int hit_cmp(const void *a, const void *b)
{
	double x = ((const code_hit *)a)->d, y = ((const code_hit *)b)->d;
	if (isnan(x) || isnan(y))
		return (isnan(x) != 0) - (isnan(y) != 0);
	return x < y ? -1 : x > y;
}

/* Nearest first, NaN (a zero vector's distance) last as PostgreSQL sorts
 * it, then by id so the order is total. */
static int ranked_cmp(const void *a, const void *b)
{
	const ranked_row *x = a, *y = b;
	if ((isnan(x->d) != 0) != (isnan(y->d) != 0))
		return isnan(x->d) ? 1 : -1;
	if (!isnan(x->d) && x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return memcmp(&x->id, &y->id, sizeof x->id);
}

static AttrNumber column_of(Relation rel, const char *name)
{
	AttrNumber a = get_attnum(RelationGetRelid(rel), name);
	if (a == InvalidAttrNumber)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
				errmsg("unde_vector_topk: %s has no column %s", RelationGetRelationName(rel), name)));
	return a;
}

/* pgvector's function name(argtypes) in the schema of the vector type, so
 * that the distances are pgvector's own to the last bit (and no caller's
 * search_path can substitute another). */
static void pgvector_function(Oid vector_type, const char *name, int nargs, Oid *argtypes, FmgrInfo *out)
{
	HeapTuple t = SearchSysCache1(TYPEOID, ObjectIdGetDatum(vector_type));
	if (!HeapTupleIsValid(t))
		elog(ERROR, "unde_vector_topk: no type %u", vector_type);
	char *nsp = get_namespace_name(((Form_pg_type)GETSTRUCT(t))->typnamespace);
	ReleaseSysCache(t);
	Oid f = LookupFuncName(list_make2(makeString(nsp), makeString(pstrdup(name))), nargs, argtypes, false);
	fmgr_info(f, out);
}

/* The partition of messages (hash-partitioned by conversation_id, 0001)
 * that holds conv's rows, as PostgreSQL's own tuple routing finds it; the
 * table itself when it is not partitioned; InvalidOid when no partition
 * takes that hash. Asking the table instead (SELECT tableoid … LIMIT 1)
 * became a sequential scan of the partition up to the conversation's first
 * row: 5 ms for a user whose rows lay behind another's. */
static Oid conversation_partition(Relation messages, pg_uuid_t *conv)
{
	if (messages->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return RelationGetRelid(messages);
	PartitionKey key = RelationGetPartitionKey(messages);
	PartitionDesc desc = RelationGetPartitionDesc(messages, true);
	if (key->strategy != PARTITION_STRATEGY_HASH || key->partnatts != 1 ||
	    key->partattrs[0] != get_attnum(RelationGetRelid(messages), "conversation_id"))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("unde_vector_topk: %s is not partitioned by hash of conversation_id",
				       RelationGetRelationName(messages))));
	Datum value = UUIDPGetDatum(conv);
	bool isnull = false;
	uint64 hash = compute_partition_hash_value(1, key->partsupfunc, key->partcollation, &value, &isnull);
	PartitionBoundInfo b = desc->boundinfo;
	if (!b || b->nindexes <= 0)
		return InvalidOid;
	int i = b->indexes[hash % (uint64)b->nindexes];
	return i < 0 ? InvalidOid : desc->oids[i];
}

/* The partition's index that is a partition of PREFILTER_INDEX, checked to
 * have its shape: key (conversation_id), INCLUDE (id, embedding_model,
 * embedding_bq). ERROR when there is none. */
static Oid prefilter_index(Relation heap, const message_columns *mc)
{
	List *indexes = RelationGetIndexList(heap);
	ListCell *lc;
	Oid found = InvalidOid;
	foreach (lc, indexes) {
		Oid ix = lfirst_oid(lc);
		Oid parent = get_rel_relispartition(ix) ? get_partition_parent(ix, true) : InvalidOid;
		char *pname = OidIsValid(parent) ? get_rel_name(parent) : NULL;
		if (!pname || strcmp(pname, PREFILTER_INDEX) != 0)
			continue;
		Relation r = index_open(ix, AccessShareLock);
		Form_pg_index f = r->rd_index;
		bool shape = f->indnatts == 4 && f->indnkeyatts == 1 && f->indkey.values[0] == mc->conv &&
			     f->indkey.values[1] == mc->id && f->indkey.values[2] == mc->model &&
			     f->indkey.values[3] == mc->bq && f->indisvalid;
		index_close(r, AccessShareLock);
		if (shape) {
			found = ix;
			break;
		}
	}
	list_free(indexes);
	if (!OidIsValid(found))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("unde_vector_topk: %s has no valid partition of %s",
				       RelationGetRelationName(heap), PREFILTER_INDEX)));
	return found;
}

/* A stored varlena (a row's or an index tuple's) as plain bytes: index
 * tuples compress values over TOAST_INDEX_TARGET (a code of more than
 * ~4,000 bits, a long model name) and rows may hold them out of line.
 * Uncompressed inline values, the usual case, are returned as they are;
 * any copy is made in CurrentMemoryContext. */
static const struct varlena *stored_bytes(Datum d)
{
	struct varlena *v = (struct varlena *)DatumGetPointer(d);
	return VARATT_IS_COMPRESSED(v) || VARATT_IS_EXTERNAL(v) ? detoast_attr(v) : v;
}

/* Does a text datum (from a row or an index tuple) equal model (NULL for a
 * NULL model, as IS NOT DISTINCT FROM)? */
static bool model_matches(bool isnull, Datum d, const text *model)
{
	if (isnull || !model)
		return isnull && !model;
	const struct varlena *v = stored_bytes(d);
	return VARSIZE_ANY_EXHDR(v) == VARSIZE_ANY_EXHDR(model) &&
	       memcmp(VARDATA_ANY(v), VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model)) == 0;
}

/* The number of bits that differ in a and b, nbytes each. Without the
 * popcnt instruction __builtin_popcountll is a libgcc call per word (9 %
 * of a crowded query's time, by perf); every x86-64 CPU since 2008 has it,
 * and the clone is chosen when the module is loaded. */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("popcnt", "default")))
#endif
static int bits_differing(const unsigned char *a, const unsigned char *b, int nbytes)
{
	int h = 0, i = 0;
	for (; i + 8 <= nbytes; i += 8) {
		uint64 x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		h += __builtin_popcountll(x ^ y);
	}
	for (; i < nbytes; i++)
		h += __builtin_popcount((unsigned)(a[i] ^ b[i]));
	return h;
}

/* The Hamming distance of the query's code and a stored one of the same
 * length (bit(n): a 4-byte bit count, then the bits); any other length is
 * an ERROR naming both. */
static int code_hamming(const VarBit *q, Datum stored)
{
	const struct varlena *v = stored_bytes(stored);
	const char *p = VARDATA_ANY(v);
	int32 len;
	if (VARSIZE_ANY_EXHDR(v) < sizeof len)
		elog(ERROR, "unde_vector_topk: a stored code of %zu bytes", VARSIZE_ANY_EXHDR(v));
	memcpy(&len, p, sizeof len);
	if (len != VARBITLEN(q))
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("unde_vector_topk: a stored code of %d bits, the query's %d", len,
				       VARBITLEN(q))));
	Assert(VARSIZE_ANY_EXHDR(v) >= sizeof len + (size_t)VARBITBYTES(q));
	return bits_differing(VARBITS(q), (const unsigned char *)p + sizeof len, VARBITBYTES(q));
}

/* How many candidates the rule takes: cmin at least, cmax at most, else
 * the count within the radius plus cmin/2 — never more than there are. */
static int candidate_count(int near, int cmin, int cmax, int nhits)
{
	int n = Min(cmax, near + cmin / 2);
	n = Max(n, cmin);
	return Min(n, nhits);
}

/* The first n hits by distance moved to the front, in no particular order
 * among ties at the cut (as the SQL plan's ORDER BY h LIMIT n). Hamming
 * distances are small integers: a histogram finds the cut without a sort. */
static void hits_keep_best(code_hit *hits, int nhits, int n, bool integral, int maxd)
{
	if (!integral) {
		qsort(hits, nhits, sizeof *hits, hit_cmp);
		return;
	}
	int *hist = palloc0(sizeof *hist * (maxd + 1));
	for (int i = 0; i < nhits; i++)
		hist[(int)hits[i].d]++;
	int cut = 0, below = 0;
	while (cut <= maxd && below + hist[cut] < n)
		below += hist[cut++];
	int at_cut = n - below, kept = 0;
	for (int i = 0; i < nhits; i++) {
		int h = (int)hits[i].d;
		if (h < cut || (h == cut && at_cut-- > 0))
			hits[kept++] = hits[i];
	}
	pfree(hist);
}

/* Recheck the branch's quals on a fetched row: it may be a newer version
 * than the one the index entry was made for. */
static bool row_qualifies(TupleTableSlot *slot, const message_columns *mc, const pg_uuid_t *conv,
			  const text *model)
{
	bool isnull;
	Datum d = slot_getattr(slot, mc->conv, &isnull);
	if (isnull || memcmp(DatumGetUUIDP(d), conv, sizeof *conv) != 0)
		return false;
	d = slot_getattr(slot, mc->able, &isnull);
	if (isnull || !DatumGetBool(d))
		return false;
	d = slot_getattr(slot, mc->forgotten, &isnull);
	if (isnull || DatumGetBool(d))
		return false;
	d = slot_getattr(slot, mc->role, &isnull);
	if (isnull)
		return false;
	const struct varlena *role = stored_bytes(d);
	if (VARSIZE_ANY_EXHDR(role) != 4 || memcmp(VARDATA_ANY(role), "user", 4) != 0)
		return false;
	d = slot_getattr(slot, mc->model, &isnull);
	if (!model_matches(isnull, d, model))
		return false;
	(void)slot_getattr(slot, mc->emb, &isnull);
	return !isnull;
}

PG_FUNCTION_INFO_V1(unde_vector_topk);

Datum unde_vector_topk(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsi = (ReturnSetInfo *)fcinfo->resultinfo;
	for (int a = 0; a < 9; a++)
		if (a != 3 && PG_ARGISNULL(a))
			return (Datum)0; /* no partition (no messages), no query: nothing */

	Oid table = PG_GETARG_OID(0);
	pg_uuid_t *conv = PG_GETARG_UUID_P(1);
	Datum query = PG_GETARG_DATUM(2);
	text *model = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	int cmin = PG_GETARG_INT32(4), cmax = PG_GETARG_INT32(5), radius = PG_GETARG_INT32(6);
	char *metric = text_to_cstring(PG_GETARG_TEXT_PP(7));
	int k = PG_GETARG_INT32(8);
	bool jaccard = strcmp(metric, "jaccard") == 0;
	if (!jaccard && strcmp(metric, "hamming") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("unde_vector_topk: metric must be hamming or jaccard, not \"%s\"", metric)));
	if (cmin < 1 || cmax < cmin || k < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("unde_vector_topk: want 1 <= cmin <= cmax and k >= 1")));

	/* the relation is read here, not by the executor: check as it would */
	AclResult acl = pg_class_aclcheck(table, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, get_rel_name(table));
	if (check_enable_rls(table, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("unde_vector_topk: %s has row-level security, which this function cannot apply",
				       get_rel_name(table))));

	Oid vtype = get_fn_expr_argtype(fcinfo->flinfo, 2);
	Oid bitargs[2] = { BITOID, BITOID }, vecargs[2] = { vtype, vtype };
	FmgrInfo quantize, cosine, jaccard_fn;
	pgvector_function(vtype, "binary_quantize", 1, vecargs, &quantize);
	pgvector_function(vtype, "cosine_distance", 2, vecargs, &cosine);
	if (jaccard)
		pgvector_function(vtype, "jaccard_distance", 2, bitargs, &jaccard_fn);
	VarBit *qcode = DatumGetVarBitP(FunctionCall1(&quantize, query));
	if (VARBITLEN(qcode) > CODE_BITS_MAX)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("unde_vector_topk: a query of %d dimensions", VARBITLEN(qcode))));

	Relation messages = table_open(table, AccessShareLock);
	Oid part = conversation_partition(messages, conv);
	if (!OidIsValid(part)) {
		table_close(messages, AccessShareLock);
		return (Datum)0;
	}
	Relation heap = part == table ? messages : table_open(part, AccessShareLock);
	message_columns mc = {
		.id = column_of(heap, "id"), .conv = column_of(heap, "conversation_id"),
		.role = column_of(heap, "role"), .emb = column_of(heap, "embedding"),
		.able = column_of(heap, "is_embeddable"), .forgotten = column_of(heap, "is_forgotten"),
		.model = column_of(heap, "embedding_model"), .bq = column_of(heap, "embedding_bq"),
	};
	Relation idx = index_open(prefilter_index(heap, &mc), AccessShareLock);
	Snapshot snap = GetActiveSnapshot();
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "unde_vector_topk tuple",
						  ALLOCSET_SMALL_SIZES);

	/* the codes: one walk of the conversation's index entries */
	ScanKeyData key;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(conv));
	IndexScanDesc scan = index_beginscan(heap, idx, snap, 1, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, &key, 1, NULL, 0);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	Buffer vmbuf = InvalidBuffer;
	int nhits = 0, cap = 1024, near = 0;
	code_hit *hits = palloc(sizeof *hits * cap);
	ItemPointer tid;
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL) {
		CHECK_FOR_INTERRUPTS();
		if (!VM_ALL_VISIBLE(heap, ItemPointerGetBlockNumber(tid), &vmbuf) &&
		    !index_fetch_heap(scan, slot))
			continue; /* no version of this entry's row is visible */
		/* the entry's model and code, read in tmp (a compressed one is copied) */
		MemoryContext old = MemoryContextSwitchTo(tmp);
		bool mnull, bnull;
		Datum m = index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &mnull);
		Datum bits = index_getattr(scan->xs_itup, 4, scan->xs_itupdesc, &bnull);
		bool keep = !bnull && model_matches(mnull, m, model);
		double d = !keep  ? 0
			   : jaccard ? DatumGetFloat8(FunctionCall2(&jaccard_fn, PointerGetDatum(qcode), bits))
				     : code_hamming(qcode, bits);
		MemoryContextSwitchTo(old);
		if (!tmp->isReset) /* only a compressed value or a Jaccard call allocates */
			MemoryContextReset(tmp);
		if (!keep)
			continue;
		if (nhits == cap) {
			if (cap > (int)(MaxAllocSize / sizeof *hits / 2))
				ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("unde_vector_topk: too many vectors in one conversation")));
			cap *= 2;
			hits = repalloc(hits, sizeof *hits * cap);
		}
		hits[nhits].tid = *tid;
		hits[nhits].d = d;
		near += !jaccard && d <= radius;
		nhits++;
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	index_endscan(scan);

	int n = jaccard ? Min(cmin, nhits) : candidate_count(near, cmin, cmax, nhits);
	hits_keep_best(hits, nhits, n, !jaccard, VARBITLEN(qcode));

	/* the re-rank: each candidate's row by its TID, its quals rechecked */
	IndexFetchTableData *fetch = table_index_fetch_begin(heap);
	ranked_row *ranked = palloc(sizeof *ranked * (n + 1));
	int nr = 0;
	for (int i = 0; i < n; i++) {
		CHECK_FOR_INTERRUPTS();
		bool call_again = false, all_dead = false;
		if (!table_index_fetch_tuple(fetch, &hits[i].tid, snap, slot, &call_again, &all_dead))
			continue;
		MemoryContext old = MemoryContextSwitchTo(tmp);
		bool keep = row_qualifies(slot, &mc, conv, model);
		if (keep) {
			bool isnull;
			Datum e = slot_getattr(slot, mc.emb, &isnull);
			ranked[nr].d = DatumGetFloat8(FunctionCall2(&cosine, query, e));
			Datum id = slot_getattr(slot, mc.id, &isnull);
			Assert(!isnull);
			memcpy(&ranked[nr].id, DatumGetUUIDP(id), sizeof(pg_uuid_t));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
		nr += keep;
	}
	table_index_fetch_end(fetch);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	if (heap != messages)
		table_close(heap, AccessShareLock);
	table_close(messages, AccessShareLock);

	qsort(ranked, nr, sizeof *ranked, ranked_cmp);
	for (int i = 0; i < nr && i < k; i++) {
		Datum values[2] = { UUIDPGetDatum(&ranked[i].id), Float8GetDatum(ranked[i].d) };
		bool nulls[2] = { false, false };
		tuplestore_putvalues(rsi->setResult, rsi->setDesc, values, nulls);
	}
	return (Datum)0;
}
