/* apify.h — the parts of unde-apify (spec §2, §17.1).
 *
 *   main.c   the filter: options, one upsert per item into raw_products,
 *            one scraper_logs row per brand run, metrics
 *   fetch.c  the Apify client: start the actor per brand, wait for it, page
 *            through its dataset, and hand the items one at a time to the
 *            filter runner's pull source (so items go through the same
 *            record loop as `--from FILE`, never all in memory)
 *   item.c   one Apify item → one product record (the columns of §6)
 *
 * Items that came from Apify carry "_apify": {"brand", "run_id"}, added by
 * fetch.c: a failed item's error record therefore still says which brand it
 * belongs to, and `jq -c .record errors | unde-apify --from -` re-imports it. */
#ifndef UNDE_APIFY_H
#define UNDE_APIFY_H

#include <jansson.h>

#define APIFY_MAX_BRANDS 32

/* One brand's actor run, filled in by the fetcher. */
struct apify_run {
	char brand[64];
	char actor[160];      /* as configured: "datasaurus/zara" */
	char run_id[64];      /* Apify's run id, "" before the run started */
	char dataset_id[64];
	char status[32];      /* Apify's final status, or "" */
	char error[512];      /* why the run gave no items, or "" */
	int exit_status;      /* EX_* of this brand's fetch, 0 when it succeeded */
	long http_status;     /* of the last API call */
	long fetched;         /* items handed to the record loop */
	double started_at;    /* wall clock, seconds */
	double finished_at;
};

struct apify_fetch {
	/* configuration, resolved before the thread starts */
	char base_url[512];   /* APIFY_API_URL without a trailing '/' */
	char auth_header[600];
	long max_items;
	long page_size;
	long run_timeout_s;
	long poll_wait_s;
	const char *actor_template;
	const char *start_url_template;
	struct apify_run runs[APIFY_MAX_BRANDS];
	size_t nruns;
	/* where the iteration is */
	size_t current;       /* the run being read */
	int run_begun;
	json_t *page;         /* the dataset page being handed out */
	size_t page_at;
	long offset;
	int last_page;
	int token_refused;
	int exit_status;      /* the worst of the runs' */
};

/* fetch.c */
/* Read the Apify settings for these brands; exits 78 on a bad one. */
void apify_fetch_config(struct apify_fetch *f, char *const *brands, size_t nbrands, long max_items);
/* The next item of the brands' runs (a new reference carrying "_apify"),
 * running each brand's actor when its turn comes; NULL when every run is
 * over (each run's outcome is in f->runs, the worst in f->exit_status). */
json_t *apify_fetch_next(struct apify_fetch *f);
/* The record loop stopped early (output gone): the run being read and
 * those not begun are marked as cut short. */
void apify_fetch_stop(struct apify_fetch *f);

/* item.c */
/* Lower-case a brand name to its slug: "Pull&Bear" → "pullandbear",
 * "Massimo Dutti" → "massimodutti". Returns 0, or -1 when nothing is left. */
int apify_brand_slug(const char *name, char *out, size_t len);

struct apify_product {
	char brand[64];
	char source[80];          /* apify_<brand> */
	char external_id[101];
	const char *name;         /* borrowed from the item */
	const char *description;
	char price[32];           /* "" when none */
	char currency[11];        /* "" when none: the column's default */
	char *category;           /* owned */
	char *colour;             /* owned */
	char *composition;        /* owned */
	json_t *sizes;            /* owned, or NULL */
	json_t *images;           /* owned array of URLs, at most 50 */
	json_t *raw;              /* owned: the item without "_apify" */
};

/* Normalise item into p. brand_hint is the --brand given (or NULL).
 * Returns 0, or -1 with code ("missing_field", "invalid_field",
 * "no_images") and a message for people. */
int apify_item_to_product(const json_t *item, const char *brand_hint, struct apify_product *p,
			  const char **code, char *msg, size_t msglen);
void apify_product_free(struct apify_product *p);

#endif
