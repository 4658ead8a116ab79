/* unde-ximilar — the Ximilar Gateway (spec §9), the only holder of the
 * Ximilar key:
 *
 *   unde-ximilar detect    POST /detect {url, user_id?} → items (crops stored)
 *   unde-ximilar tag       POST /tag {url, category?} → type, color, …
 *   unde-ximilar search    POST /search {crop_url, category?, top_k?} → candidates
 *   unde-ximilar metrics   §19's gateway metrics as Prometheus text
 *
 * The work is in gw.c; this file only dispatches. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "log.h"
#include "recog.h"

typedef json_t *(*gw_fn)(const json_t *, struct deadline, struct recog_err *);

static int gw_record(void *sp, struct filter_run *run, json_t *rec)
{
	gw_fn fn = *(gw_fn *)sp;
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
	log_init("unde-ximilar");
	if (VIPS_INIT(argv[0]))
		return EX_SOFTWARE;
	rmetrics_init("unde-ximilar");
	const char *sub = argc > 1 ? argv[1] : "";
	gw_fn fn = !strcmp(sub, "detect") ? gw_detect : !strcmp(sub, "tag") ? gw_tag : !strcmp(sub, "search") ? gw_search
												 : NULL;
	if (!strcmp(sub, "metrics")) {
		if (argc > 2) {
			fputs(!strcmp(argv[2], "--help") ? "Usage: unde-ximilar metrics\nPrint the gateway's §19 metrics.\n"
							 : "Usage: unde-ximilar metrics\n",
			      !strcmp(argv[2], "--help") ? stdout : stderr);
			return !strcmp(argv[2], "--help") ? 0 : EX_USAGE;
		}
		return rmetrics_render(stdout) ? EX_IOERR : 0;
	}
	if (!fn) {
		if (!strcmp(sub, "--version")) {
			printf("unde-ximilar %s\n", PACKAGE_VERSION);
			return 0;
		}
		FILE *o = !strcmp(sub, "--help") ? stdout : stderr;
		fputs("Usage: unde-ximilar detect|tag|search [--online] [--env-file FILE]\n"
		      "       unde-ximilar metrics\n"
		      "The Ximilar Gateway (spec §9): fashion detection (crops stored in the private\n"
		      "user-media bucket), tagging and visual search; the local provider without\n"
		      "XIMILAR_API_TOKEN or when Ximilar fails. See unde-ximilar(1).\n",
		      o);
		if (o == stderr && sub[0])
			log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s}", "subcommand", sub));
		return o == stdout ? 0 : EX_USAGE;
	}
	const struct filter_def def = {
		.name = "unde-ximilar",
		.summary = !strcmp(sub, "detect") ? "detect: {url, user_id?} → {items:[{crop_url, bbox, category, confidence}], width, height, provider}"
			   : !strcmp(sub, "tag")  ? "tag: {url, category?} → {type, color, color_hex, material, pattern, colors, provider}"
						  : "search: {crop_url, category?, top_k?} → {candidates:[{sku_id, score, distance, image_urls, metadata}], provider}",
		.synopsis = sub,
		.max_operands = FILTER_NO_OPERANDS,
		.on_finish = on_finish,
		.on_record = gw_record,
	};
	return filter_main(&def, &fn, argc - 1, argv + 1);
}
