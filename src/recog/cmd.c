/* cmd.c — what the main() of unde-ximilar, unde-rerank and unde-recognize
 * share: the start (logging, libvips, the metrics file), the `metrics`
 * subcommand, the end of a run, and for the two services whose words each
 * name one gw_* / rr_* call, the whole subcommand dispatch. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "log.h"
#include "recog.h"

/* The start every command shares. libvips is not started here but by the
 * first decode (photo_vips, photo.c): a process that only passes bytes on
 * (the orchestrator over HTTP, the reranker with Gemini, the gateway's
 * search with Ximilar) never pays its ~97 M instructions. */
int recog_start(const char *name, int argc, char **argv)
{
	log_init(name);
	photo_vips_prepare(argv[0]);
	rmetrics_init(name);
	if (argc < 2 || strcmp(argv[1], "metrics") != 0)
		return -1;
	if (argc == 2)
		return rmetrics_render(stdout) ? EX_IOERR : 0;
	int help = !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h");
	fprintf(help ? stdout : stderr, "Usage: %s metrics\n%s", name,
		help ? "Print the service's §19 metrics as Prometheus text.\n" : "");
	if (help)
		return 0;
	log_event(LOG_ERROR, "metrics takes no options or arguments",
		  json_pack("{s:s, s:i}", "argument", argv[2], "exit", EX_USAGE));
	return EX_USAGE;
}

void recog_finish(void *state, struct filter_run *run)
{
	(void)state;
	(void)run;
	gw_thread_done(); /* the main thread's production connection */
	photo_vips_shutdown();
}

/* One record through the subcommand's call: its answer's keys added. */
static int recog_record(void *state, struct filter_run *run, json_t *rec)
{
	const struct recog_sub *sub = state;
	struct recog_err e = { 0 };
	json_t *ans = sub->fn(rec, filter_deadline(run), &e);
	if (!ans)
		return filter_fail(run, e.status ? e.status : EX_SOFTWARE,
				   e.code[0] ? e.code : "internal", "%s", e.message);
	json_object_update(rec, ans);
	json_decref(ans);
	return 0;
}

int recog_main(const char *name, const char *usage, const struct recog_sub *subs, int argc,
	       char **argv)
{
	int rc = recog_start(name, argc, argv);
	if (rc >= 0)
		return rc;
	const char *word = argc > 1 ? argv[1] : "";
	const struct recog_sub *sub = subs;
	while (sub->word && strcmp(sub->word, word) != 0)
		sub++;
	if (!sub->word) {
		if (!strcmp(word, "--version") || !strcmp(word, "-V")) {
			printf("%s %s\n", name, PACKAGE_VERSION);
			return 0;
		}
		int help = !strcmp(word, "--help") || !strcmp(word, "-h");
		fputs(usage, help ? stdout : stderr);
		if (help)
			return 0;
		if (word[0])
			log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s}", "subcommand", word));
		return EX_USAGE;
	}
	const struct filter_def def = {
		.name = name,
		.summary = sub->summary,
		.synopsis = sub->word,
		.max_operands = FILTER_NO_OPERANDS,
		.on_finish = recog_finish,
		.on_record = recog_record,
	};
	return filter_main(&def, (void *)sub, argc - 1, argv + 1);
}

/* Where stock counts (§8's "in KZ stores"): set but empty means any
 * country, which conf_str alone would read as unset (the default KZ). */
void recog_stock_place(const char **country, const char **city)
{
	const char *c = getenv("RECOGNITION_STOCK_COUNTRY");
	*country = c && !*c ? NULL : conf_str("RECOGNITION_STOCK_COUNTRY", "KZ");
	*city = conf_str("RECOGNITION_STOCK_CITY", NULL);
}
