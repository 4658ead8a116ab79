/* unde-rerank — the LLM Reranker (spec §10), the only caller of Gemini for
 * recognition:
 *
 *   unde-rerank tag       POST /tag {url} → style, occasion, brand_style, season
 *   unde-rerank rerank    POST /rerank {crop_url, candidates, tags} → ranked
 *   unde-rerank metrics   §19's reranker metrics as Prometheus text
 *
 * The work is in rr.c; this file only dispatches. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "filter.h"
#include "log.h"
#include "recog.h"

typedef json_t *(*rr_fn)(const json_t *, struct deadline, struct recog_err *);

static int rr_record(void *sp, struct filter_run *run, json_t *rec)
{
	rr_fn fn = *(rr_fn *)sp;
	struct recog_err e = { 0 };
	json_t *ans = fn(rec, filter_deadline(run), &e);
	if (!ans)
		return filter_fail(run, e.status ? e.status : EX_SOFTWARE, e.code[0] ? e.code : "internal", "%s",
				   e.message);
	json_object_update(rec, ans);
	json_decref(ans);
	return 0;
}

/* The main thread's production connection. */
static void on_finish(void *sp, struct filter_run *run)
{
	(void)sp;
	(void)run;
	gw_thread_done();
}

int main(int argc, char **argv)
{
	log_init("unde-rerank");
	if (VIPS_INIT(argv[0]))
		return EX_SOFTWARE;
	rmetrics_init("unde-rerank");
	const char *sub = argc > 1 ? argv[1] : "";
	rr_fn fn = !strcmp(sub, "tag") ? rr_tag : !strcmp(sub, "rerank") ? rr_rerank : NULL;
	if (!strcmp(sub, "metrics") && argc == 2)
		return rmetrics_render(stdout) ? EX_IOERR : 0;
	if (!fn) {
		if (!strcmp(sub, "--version")) {
			printf("unde-rerank %s\n", PACKAGE_VERSION);
			return 0;
		}
		FILE *o = !strcmp(sub, "--help") ? stdout : stderr;
		fputs("Usage: unde-rerank tag|rerank [--online] [--env-file FILE]\n"
		      "       unde-rerank metrics\n"
		      "The LLM Reranker (spec §10): style tags and the visual rerank of search\n"
		      "candidates with Gemini, or locally (descriptor similarity) without\n"
		      "GEMINI_API_KEY or when Gemini fails. See unde-rerank(1).\n",
		      o);
		if (o == stderr && sub[0])
			log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s}", "subcommand", sub));
		return o == stdout ? 0 : EX_USAGE;
	}
	const struct filter_def def = {
		.name = "unde-rerank",
		.summary = !strcmp(sub, "tag") ? "tag: {url} → {style, occasion, brand_style, season, provider}"
					       : "rerank: {crop_url, candidates, tags} → {ranked:[{sku_id, score, visual, semantic, reason}], provider}",
		.synopsis = sub,
		.max_operands = FILTER_NO_OPERANDS,
		.on_finish = on_finish,
		.on_record = rr_record,
	};
	return filter_main(&def, &fn, argc - 1, argv + 1);
}
