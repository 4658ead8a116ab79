/* unde_bench_topk — a measured design candidate for issue 9, not used by
 * unde-shard: the prefilter plan's vector branch as one C function inside
 * PostgreSQL, to learn what the SQL executor's per-row costs are.
 *
 * The SQL plan (lib/shardc_search.c) pays, at five years (15,000 codes,
 * ~700 candidates on a crowded query), for an index-only scan node per code
 * and, per candidate, a primary-key descent (3 pages) before its heap page.
 * Here the covering B-tree (conversation_id) INCLUDE (id, embedding_model,
 * embedding_bq) is walked directly: each index tuple's code is compared as
 * it comes, visibility as an index-only scan checks it (the visibility map,
 * the heap when a page is not all-visible), and the candidates are then
 * fetched by the heap TIDs the index already gave: no descent. The
 * candidate rule is the SQL plan's (the best GREATEST(cmin, LEAST(cmax,
 * count(h <= radius) + cmin / 2)) by Hamming distance), the distance
 * pgvector's cosine distance, the quals rechecked on the fetched row.
 *
 *   unde_bench_topk(partition regclass, covering_index regclass,
 *                   conversation uuid, query real[], model text,
 *                   cmin int, cmax int, radius int, k int)
 *     RETURNS TABLE(id uuid, distance float8)
 *
 * bench/shard/native/run builds it, installs it into the bench cluster and
 * measures it against the SQL plan on crowded.sh's database. */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

PG_MODULE_MAGIC;

#define CODE_BITS 1024
#define CODE_WORDS (CODE_BITS / 64)

/* pgvector's on-disk vector: a varlena of dim float4s. */
typedef struct {
	int32 vl_len_;
	int16 dim;
	int16 unused;
	float4 x[FLEXIBLE_ARRAY_MEMBER];
} bench_vector;

typedef struct {
	ItemPointerData tid;
	int h;
} bench_code_hit;

typedef struct {
	pg_uuid_t id;
	double d;
} bench_ranked;

static int ranked_cmp(const void *a, const void *b)
{
	double x = ((const bench_ranked *)a)->d, y = ((const bench_ranked *)b)->d;
	return x < y ? -1 : x > y;
}

/* The Hamming distance between the query's code and a bit(1024) datum as
 * stored in an index tuple (short or long varlena header, never toasted
 * there). */
static int code_distance(const uint64 *q, Datum bits)
{
	const char *p = VARDATA_ANY(DatumGetPointer(bits));
	int32 len;
	memcpy(&len, p, sizeof len);
	if (len != CODE_BITS)
		elog(ERROR, "unde_bench_topk: a code of %d bits", len);
	int h = 0;
	for (int w = 0; w < CODE_WORDS; w++) {
		uint64 v;
		memcpy(&v, p + 4 + 8 * w, 8);
		h += __builtin_popcountll(v ^ q[w]);
	}
	return h;
}

/* pgvector's cosine distance, in double as it accumulates. */
static double cosine_distance(const float4 *q, const bench_vector *v)
{
	double dot = 0, na = 0, nb = 0;
	for (int i = 0; i < v->dim; i++) {
		dot += (double)q[i] * v->x[i];
		na += (double)q[i] * q[i];
		nb += (double)v->x[i] * v->x[i];
	}
	double sim = dot / sqrt(na * nb);
	if (sim > 1)
		sim = 1;
	if (sim < -1)
		sim = -1;
	return 1 - sim;
}

static AttrNumber column(Oid rel, const char *name)
{
	AttrNumber a = get_attnum(rel, name);
	if (a == InvalidAttrNumber)
		elog(ERROR, "unde_bench_topk: no column %s", name);
	return a;
}

PG_FUNCTION_INFO_V1(unde_bench_topk);

Datum unde_bench_topk(PG_FUNCTION_ARGS)
{
	Oid part = PG_GETARG_OID(0), index = PG_GETARG_OID(1);
	pg_uuid_t *conv = PG_GETARG_UUID_P(2);
	ArrayType *qa = PG_GETARG_ARRAYTYPE_P(3);
	text *model = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	int cmin = PG_GETARG_INT32(5), cmax = PG_GETARG_INT32(6), radius = PG_GETARG_INT32(7);
	int k = PG_GETARG_INT32(8);

	if (ARR_NDIM(qa) != 1 || ARR_HASNULL(qa) || ARR_ELEMTYPE(qa) != FLOAT4OID ||
	    ArrayGetNItems(ARR_NDIM(qa), ARR_DIMS(qa)) != CODE_BITS)
		elog(ERROR, "unde_bench_topk: the query must be real[%d] without NULLs", CODE_BITS);
	const float4 *q = (const float4 *)ARR_DATA_PTR(qa);
	uint64 qcode[CODE_WORDS] = { 0 };
	for (int i = 0; i < CODE_BITS; i++) /* pgvector's binary_quantize: x > 0 */
		if (q[i] > 0)
			((uint8 *)qcode)[i / 8] |= (uint8)(0x80 >> (i % 8));

	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsi = (ReturnSetInfo *)fcinfo->resultinfo;

	Relation heap = table_open(part, AccessShareLock);
	Relation idx = index_open(index, AccessShareLock);
	Snapshot snap = GetActiveSnapshot();
	AttrNumber a_id = column(part, "id"), a_conv = column(part, "conversation_id"),
		   a_role = column(part, "role"), a_emb = column(part, "embedding"),
		   a_able = column(part, "is_embeddable"), a_forg = column(part, "is_forgotten"),
		   a_model = column(part, "embedding_model");

	/* the codes: one pass over the conversation's index tuples */
	ScanKeyData key;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(conv));
	IndexScanDesc scan = index_beginscan(heap, idx, snap, 1, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, &key, 1, NULL, 0);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	Buffer vmbuf = InvalidBuffer;
	int nhits = 0, cap = 1024, near = 0;
	bench_code_hit *hits = palloc(sizeof *hits * cap);
	int hist[CODE_BITS + 1] = { 0 };
	ItemPointer tid;
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL) {
		CHECK_FOR_INTERRUPTS();
		if (!VM_ALL_VISIBLE(heap, ItemPointerGetBlockNumber(tid), &vmbuf) &&
		    !index_fetch_heap(scan, slot))
			continue;
		bool isnull;
		Datum m = index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &isnull);
		if (isnull != (model == NULL) ||
		    (model && (VARSIZE_ANY_EXHDR(DatumGetPointer(m)) != VARSIZE_ANY_EXHDR(model) ||
			       memcmp(VARDATA_ANY(DatumGetPointer(m)), VARDATA_ANY(model),
				      VARSIZE_ANY_EXHDR(model)) != 0)))
			continue;
		Datum bits = index_getattr(scan->xs_itup, 4, scan->xs_itupdesc, &isnull);
		if (isnull)
			continue;
		if (nhits == cap) {
			cap *= 2;
			hits = repalloc(hits, sizeof *hits * cap);
		}
		hits[nhits].tid = *tid;
		hits[nhits].h = code_distance(qcode, bits);
		hist[hits[nhits].h]++;
		near += hits[nhits].h <= radius;
		nhits++;
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	index_endscan(scan);

	/* the candidates: the best n by Hamming distance, as the SQL plan's
	 * LIMIT takes them (ties at the cut in no particular order) */
	int n = Min(cmax, near + cmin / 2);
	n = Max(n, cmin);
	n = Min(n, nhits);
	int cut = 0, below = 0;
	while (cut <= CODE_BITS && below + hist[cut] < n)
		below += hist[cut++];
	int at_cut = n - below; /* how many with h == cut still to take */

	/* the re-rank: each candidate's row by its TID, the quals rechecked */
	IndexFetchTableData *fetch = table_index_fetch_begin(heap);
	bench_ranked *ranked = palloc(sizeof *ranked * (n + 1));
	int nr = 0;
	for (int i = 0; i < nhits; i++) {
		if (hits[i].h > cut || (hits[i].h == cut && at_cut-- <= 0))
			continue;
		CHECK_FOR_INTERRUPTS();
		bool call_again = false, all_dead = false;
		if (!table_index_fetch_tuple(fetch, &hits[i].tid, snap, slot, &call_again, &all_dead))
			continue;
		bool isnull;
		Datum c = slot_getattr(slot, a_conv, &isnull);
		if (isnull || memcmp(DatumGetUUIDP(c), conv, sizeof *conv) != 0)
			continue;
		Datum able = slot_getattr(slot, a_able, &isnull);
		if (isnull || !DatumGetBool(able))
			continue;
		Datum forg = slot_getattr(slot, a_forg, &isnull);
		if (isnull || DatumGetBool(forg))
			continue;
		Datum role = slot_getattr(slot, a_role, &isnull);
		if (isnull || VARSIZE_ANY_EXHDR(DatumGetPointer(role)) != 4 ||
		    memcmp(VARDATA_ANY(DatumGetPointer(role)), "user", 4) != 0)
			continue;
		Datum m = slot_getattr(slot, a_model, &isnull);
		if (isnull != (model == NULL) ||
		    (model && (VARSIZE_ANY_EXHDR(DatumGetPointer(m)) != VARSIZE_ANY_EXHDR(model) ||
			       memcmp(VARDATA_ANY(DatumGetPointer(m)), VARDATA_ANY(model),
				      VARSIZE_ANY_EXHDR(model)) != 0)))
			continue;
		Datum e = slot_getattr(slot, a_emb, &isnull);
		if (isnull)
			continue;
		bench_vector *v = (bench_vector *)PG_DETOAST_DATUM(e);
		if (v->dim != CODE_BITS)
			elog(ERROR, "unde_bench_topk: a vector of %d dimensions", v->dim);
		ranked[nr].d = cosine_distance(q, v);
		memcpy(&ranked[nr].id, DatumGetUUIDP(slot_getattr(slot, a_id, &isnull)), sizeof(pg_uuid_t));
		nr++;
		if ((Pointer)v != DatumGetPointer(e))
			pfree(v);
	}
	table_index_fetch_end(fetch);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(heap, AccessShareLock);

	qsort(ranked, nr, sizeof *ranked, ranked_cmp);
	for (int i = 0; i < nr && i < k; i++) {
		Datum values[2] = { UUIDPGetDatum(&ranked[i].id), Float8GetDatum(ranked[i].d) };
		bool nulls[2] = { false, false };
		tuplestore_putvalues(rsi->setResult, rsi->setDesc, values, nulls);
	}
	return (Datum)0;
}
