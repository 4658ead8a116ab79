/* recog.h — fashion recognition (spec §8-§10): the parts shared by
 * unde-ximilar (the gateway), unde-rerank (the reranker) and
 * unde-recognize (the orchestrator).
 *
 *   photo.c    fetch a photo (object store or HTTP), decode it with
 *              libvips (orientation applied), crop, describe, colours
 *   gw.c       the gateway's detect / tag / search: Ximilar when
 *              XIMILAR_API_TOKEN is set, the local provider otherwise or
 *              when Ximilar fails
 *   rr.c       the reranker's tag / rerank: Gemini when GEMINI_API_KEY is
 *              set, the local provider otherwise or when Gemini fails
 *   rmetrics.c §19's metrics in lib/counters.h's shared file
 *   cmd.c      the start, `metrics` and the subcommand dispatch of the
 *              three commands' main()
 *
 * gw_* and rr_* are what unde-ximilar and unde-rerank serve over HTTP; the
 * orchestrator calls them in-process only when XIMILAR_GW_URL /
 * LLM_RERANKER_URL are unset (a pipe on one machine). */
#ifndef UNDE_RECOG_H
#define UNDE_RECOG_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <vips/vips.h>

#include "deadline.h"
#include "descriptor.h"
#include "util.h"

struct objstore;

/* A failure: code, message and the EX_* status for the record. */
struct recog_err {
	char code[48];
	char message[512];
	int status;
};

void recog_fail(struct recog_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* --- photo.c --------------------------------------------------------------- */

/* The catalog's store (S3_BUCKET) and the private user-media store
 * (S3_USER_MEDIA_BUCKET, default unde-user-media), opened on first use;
 * NULL when S3_ENDPOINT is unset. */
struct objstore *photo_images_store(void);
struct objstore *photo_media_store(void);

/* Called once at the start, before any thread: remembers argv0 for
 * libvips and, unless VIPSHOME is set, points it where there are no
 * libvips modules (ImageMagick, PDF, HEIF, OpenSlide, JPEG XL): the photos
 * are JPEG, PNG or WebP (lib/image.h's sniff lets nothing else through),
 * which libvips reads itself; the modules' dlopen is ~92 M instructions
 * per process, and ImageMagick a wide attack surface. */
void photo_vips_prepare(const char *argv0);
/* Start libvips on first use (once per process, any thread). 0, or -1
 * with e set. */
int photo_vips(struct recog_err *e);
/* libvips shut down if it was started (the end of a run). */
void photo_vips_shutdown(void);

/* The bytes of url: an object of one of the two stores (read signed), or
 * an http(s) URL, fetched only from a public address or one of
 * PHOTO_FETCH_ALLOW_NETS (lib/netguard.h: the request's URL must not reach
 * our own network). At most 32 MiB. 0, or -1 with e set. */
int photo_fetch(const char *url, struct deadline dl, struct buf *out, struct recog_err *e);

/* Decode a JPEG, PNG or WebP, orientation applied, as 3-band 8-bit sRGB.
 * A new image, or NULL with e set. */
VipsImage *photo_decode(const struct buf *data, struct recog_err *e);

/* photo_fetch + photo_decode. */
VipsImage *photo_load(const char *url, struct deadline dl, struct recog_err *e);

/* The descriptor of lib/descriptor.h, computed on the image shrunk to
 * about 128 pixels on its short side (as unde-ximilar-sync decodes). */
int photo_describe(VipsImage *im, float out[DESCRIPTOR_DIM], struct recog_err *e);

/* The box [x0, y0, x1, y1) of im (clamped to it) as a JPEG. 0 or -1. */
int photo_crop_jpeg(VipsImage *im, const int box[4], struct buf *jpeg, struct recog_err *e);

/* The image's dominant colours, centre-weighted, named from a fixed
 * palette: [{"name","hex","share"}] by share, at most max (a new array);
 * the background (the colour of most of the outer 8 % frame) comes last,
 * marked "background":true. */
json_t *photo_colours(VipsImage *im, size_t max);

/* --- regions.c ------------------------------------------------------------ */

/* The local detector: garment regions of a photo on a plain background
 * (foreground by colour distance from the border, connected boxes, a
 * component cut where its rows change colour: upper / lower body). Boxes
 * [x0, y0, x1, y1) in im's pixels and their kinds ("garment",
 * "upper_body", "lower_body", "middle_body"), top to bottom; at most max.
 * 0 when the border is busy (no plain background) or nothing stands out. */
size_t photo_regions(VipsImage *im, int (*boxes)[4], const char **kinds, size_t max);
/* The local detect's items: the regions when there are two or more, else
 * the whole photo (category "whole_photo", confidence 1). */
json_t *photo_local_items(VipsImage *im);

/* Cosine similarity of two descriptors. */
double photo_similarity(const float a[DESCRIPTOR_DIM], const float b[DESCRIPTOR_DIM]);

/* base64 of len bytes (a new string). */
char *photo_base64(const void *data, size_t len);

/* --- gw.c ------------------------------------------------------------------ */

/* POST /detect {url, user_id?} → {items:[{crop_url, bbox, category,
 * confidence}], width, height, provider}. */
json_t *gw_detect(const json_t *in, struct deadline dl, struct recog_err *e);
/* POST /tag {url, category?} → {type, color, color_hex, material, pattern,
 * colors, provider}. */
json_t *gw_tag(const json_t *in, struct deadline dl, struct recog_err *e);
/* POST /search {crop_url, category?, top_k?} → {candidates:[{sku_id,
 * score, distance, image_urls, metadata}], provider}. */
json_t *gw_search(const json_t *in, struct deadline dl, struct recog_err *e);
/* The production database (PRODUCTION_DB_URL), connected on first use and
 * again after it was lost; NULL with e set. */
PGconn *gw_production_db(struct recog_err *e);
/* Close this thread's production connection (a thread that ends). */
void gw_thread_done(void);
/* Make db (opened by another thread) this thread's production connection;
 * closed instead when this thread has one or db is not connected. */
void gw_production_adopt(PGconn *db);
/* Has this thread a live production connection? */
int gw_production_connected(void);

/* --- rr.c ------------------------------------------------------------------ */

/* POST /tag {url} → {style, occasion, brand_style, season, provider}. */
json_t *rr_tag(const json_t *in, struct deadline dl, struct recog_err *e);
/* POST /rerank {crop_url, candidates, tags} → {ranked:[{sku_id, score,
 * visual, semantic, reason}], provider}. */
json_t *rr_rerank(const json_t *in, struct deadline dl, struct recog_err *e);
/* The semantic agreement of tags with a candidate's metadata, 0..1, or -1
 * when none of the tags can be compared (documented in unde-rerank(1)). */
double rr_semantic(const json_t *tags, const json_t *metadata);

/* --- ratelimit.c ---------------------------------------------------------- */

/* Take a token of the host's Ximilar bucket, waiting while the deadline
 * allows: 0, or -1 when none can be had in time. */
int rl_take(struct deadline dl);
/* Block every process for ms (a 429's Retry-After; <= 0: 1 s). */
void rl_block(double ms);

/* --- rmetrics.c ------------------------------------------------------------ */

/* service: "unde-ximilar", "unde-rerank", "unde-recognize". */
void rmetrics_init(const char *service);
void rmetrics_add(const char *name, const char *labels, double v);
void rmetrics_observe_ms(const char *name, const char *labels, double ms);
/* Print the service's metrics as Prometheus text. */
int rmetrics_render(FILE *out);

/* --- cmd.c ----------------------------------------------------------------- */

struct filter_run;

/* A command's start: logging, libvips and the metrics file of name; then
 * `name metrics` is answered here. -1 to go on, else the exit status. */
int recog_start(const char *name, int argc, char **argv);
/* The user's market for "in stock": RECOGNITION_STOCK_COUNTRY (default
 * KZ; set but empty: NULL, any country) and RECOGNITION_STOCK_CITY (NULL
 * when unset: any city). */
void recog_stock_place(const char **country, const char **city);
/* The filters' on_finish: the main thread's production connection ends,
 * libvips stops. */
void recog_finish(void *state, struct filter_run *run);

/* A subcommand word that names one call (gw_detect, rr_tag, …). */
struct recog_sub {
	const char *word;    /* "detect" */
	const char *summary; /* for its --help */
	json_t *(*fn)(const json_t *in, struct deadline dl, struct recog_err *e);
};
/* The whole main() of unde-ximilar and unde-rerank: recog_start, then the
 * subcommand of subs ({ NULL }-terminated) named by argv[1] runs as a
 * filter; --help prints usage, --version the version, anything else is a
 * usage error (64). */
int recog_main(const char *name, const char *usage, const struct recog_sub *subs, int argc,
	       char **argv);

#endif
