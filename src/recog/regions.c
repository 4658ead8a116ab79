/* regions — the local detector: garment regions of a photo found by plain
 * image arithmetic, no model.
 *
 * On a product-style photo (a garment or an outfit on a plain background)
 * the background is the colour of the border: the photo is shrunk to
 * REG_SIDE pixels on its long side, a pixel farther than REG_FG_DIST from
 * the border's mean colour is foreground, and the foreground's 4-connected
 * components are the candidate regions (smaller than REG_MIN_AREA of the
 * photo: noise). Components of one colour split by a thin band (a stripe
 * of the background's colour across the garment) are joined again. A
 * component whose rows change colour for good (a top over trousers) is cut
 * where they do: the rows are grouped into runs of one mean colour, runs
 * shorter than REG_MIN_RUN of the component dropped, equal neighbours
 * joined; two or more runs left are upper and lower body.
 * A busy border (a street behind the person) means there is no plain
 * background to tell from: no regions, and the caller keeps the whole
 * photo. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recog.h"
#include "rvips.h"

#define REG_SIDE 128
#define REG_FG_DIST 40.0     /* RGB distance from the background's colour */
#define REG_BORDER_PLAIN 0.7 /* share of the border within REG_FG_DIST of its mean */
#define REG_MIN_AREA 0.02
#define REG_MIN_RUN 0.2
#define REG_SAME_COLOUR 45.0
#define REG_MAX 16

struct reg {
	int x0, y0, x1, y1; /* [x0, x1) × [y0, y1) in the small image */
	double sum[3];
	long n;
	int label;
};

static double reg_dist(const double a[3], const double b[3])
{
	return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

static void reg_mean(const struct reg *r, double m[3])
{
	for (int c = 0; c < 3; c++)
		m[c] = r->n ? r->sum[c] / (double)r->n : 0;
}

/* The background colour (the border's mean) and whether the border is
 * plain enough to be one. */
static int reg_background(const unsigned char *px, int w, int h, double bg[3])
{
	double s[3] = { 0 };
	long n = 0, near = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				if (y > 1 && y < h - 2 && x > 1 && x < w - 2)
					continue;
				const unsigned char *p = px + ((size_t)y * w + x) * 3;
				double v[3] = { p[0], p[1], p[2] };
				if (pass == 0) {
					for (int c = 0; c < 3; c++)
						s[c] += v[c];
					n++;
				} else if (reg_dist(v, bg) <= REG_FG_DIST) {
					near++;
				}
				if (pass == 0 && y == h - 1 && x == w - 1)
					for (int c = 0; c < 3; c++)
						bg[c] = s[c] / (double)n;
			}
	return n > 0 && (double)near / (double)n >= REG_BORDER_PLAIN;
}

/* Label the 4-connected components of mask (1 = foreground) into lab;
 * their boxes and colours into regs. The number found (at most REG_MAX
 * big enough ones). */
static size_t reg_components(const unsigned char *px, const unsigned char *mask, int w, int h, int *lab,
			     struct reg *regs)
{
	size_t nregs = 0;
	int *stack = xmalloc((size_t)w * h * sizeof *stack);
	int next = 1;
	for (int i = 0; i < w * h; i++) {
		if (!mask[i] || lab[i])
			continue;
		struct reg r = { .x0 = w, .y0 = h, .x1 = 0, .y1 = 0, .label = next };
		size_t sp = 0;
		stack[sp++] = i;
		lab[i] = next;
		while (sp) {
			int k = stack[--sp], x = k % w, y = k / w;
			const unsigned char *p = px + (size_t)k * 3;
			for (int c = 0; c < 3; c++)
				r.sum[c] += p[c];
			r.n++;
			r.x0 = x < r.x0 ? x : r.x0, r.y0 = y < r.y0 ? y : r.y0;
			r.x1 = x + 1 > r.x1 ? x + 1 : r.x1, r.y1 = y + 1 > r.y1 ? y + 1 : r.y1;
			int nb[4] = { x > 0 ? k - 1 : -1, x < w - 1 ? k + 1 : -1, y > 0 ? k - w : -1, y < h - 1 ? k + w : -1 };
			for (int j = 0; j < 4; j++)
				if (nb[j] >= 0 && mask[nb[j]] && !lab[nb[j]]) {
					lab[nb[j]] = next;
					stack[sp++] = nb[j];
				}
		}
		next++;
		if ((double)r.n >= REG_MIN_AREA * w * h && nregs < REG_MAX)
			regs[nregs++] = r;
	}
	free(stack);
	return nregs;
}

/* Join regions of one colour whose boxes overlap across and lie close
 * above each other (a garment cut by a stripe). */
static size_t reg_join(struct reg *regs, size_t n, int h)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			struct reg *a = &regs[i], *b = &regs[j];
			double ma[3], mb[3];
			reg_mean(a, ma);
			reg_mean(b, mb);
			int overlap_x = (a->x1 < b->x1 ? a->x1 : b->x1) - (a->x0 > b->x0 ? a->x0 : b->x0);
			int gap = a->y1 <= b->y0 ? b->y0 - a->y1 : b->y1 <= a->y0 ? a->y0 - b->y1 : 0;
			if (overlap_x > 0 && gap <= h / 10 && reg_dist(ma, mb) < REG_SAME_COLOUR) {
				a->x0 = a->x0 < b->x0 ? a->x0 : b->x0, a->y0 = a->y0 < b->y0 ? a->y0 : b->y0;
				a->x1 = a->x1 > b->x1 ? a->x1 : b->x1, a->y1 = a->y1 > b->y1 ? a->y1 : b->y1;
				for (int c = 0; c < 3; c++)
					a->sum[c] += b->sum[c];
				a->n += b->n;
				regs[j] = regs[--n];
				j = i; /* look again with the grown region */
			}
		}
	return n;
}

/* Cut region r (labels lab) where its rows' colour changes for good: the
 * cut rows into cuts (at most max-1). Their number. */
static size_t reg_cuts(const unsigned char *px, const int *lab, int w, const struct reg *r, int *cuts, size_t max)
{
	struct run {
		int y0, y1;
		double sum[3];
		long n;
	} runs[64];
	size_t nr = 0;
	for (int y = r->y0; y < r->y1; y++) {
		double s[3] = { 0 };
		long n = 0;
		for (int x = r->x0; x < r->x1; x++)
			if (lab[y * w + x] == r->label) {
				const unsigned char *p = px + ((size_t)y * w + x) * 3;
				for (int c = 0; c < 3; c++)
					s[c] += p[c];
				n++;
			}
		if (!n)
			continue;
		double m[3] = { s[0] / n, s[1] / n, s[2] / n }, rm[3] = { 0 };
		if (nr)
			for (int c = 0; c < 3; c++)
				rm[c] = runs[nr - 1].sum[c] / (double)runs[nr - 1].n;
		if (nr && reg_dist(m, rm) < REG_SAME_COLOUR) {
			runs[nr - 1].y1 = y + 1;
		} else if (nr < sizeof runs / sizeof runs[0]) {
			runs[nr++] = (struct run){ .y0 = y, .y1 = y + 1 };
		} else {
			return 0; /* a pattern, not two garments */
		}
		for (int c = 0; c < 3; c++)
			runs[nr - 1].sum[c] += s[c];
		runs[nr - 1].n += n;
	}
	/* short runs (a stripe, a belt) belong to no garment; equal neighbours join */
	size_t k = 0;
	int minrun = (int)ceil(REG_MIN_RUN * (r->y1 - r->y0));
	for (size_t i = 0; i < nr; i++) {
		if (runs[i].y1 - runs[i].y0 < minrun)
			continue;
		if (k) {
			double a[3], b[3];
			for (int c = 0; c < 3; c++) {
				a[c] = runs[k - 1].sum[c] / (double)runs[k - 1].n;
				b[c] = runs[i].sum[c] / (double)runs[i].n;
			}
			if (reg_dist(a, b) < REG_SAME_COLOUR) {
				runs[k - 1].y1 = runs[i].y1;
				for (int c = 0; c < 3; c++)
					runs[k - 1].sum[c] += runs[i].sum[c];
				runs[k - 1].n += runs[i].n;
				continue;
			}
		}
		runs[k++] = runs[i];
	}
	size_t nc = 0;
	for (size_t i = 1; i < k && nc < max; i++)
		cuts[nc++] = runs[i].y0;
	return nc;
}

/* Regions top to bottom, then left to right. */
static void reg_sort(int (*boxes)[4], const char **kinds, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && (boxes[j][1] < boxes[j - 1][1] ||
					     (boxes[j][1] == boxes[j - 1][1] && boxes[j][0] < boxes[j - 1][0]));
		     j--) {
			int t[4];
			memcpy(t, boxes[j], sizeof t);
			memcpy(boxes[j], boxes[j - 1], sizeof t);
			memcpy(boxes[j - 1], t, sizeof t);
			const char *k = kinds[j];
			kinds[j] = kinds[j - 1];
			kinds[j - 1] = k;
		}
}

size_t photo_regions(VipsImage *im, int (*boxes)[4], const char **kinds, size_t max)
{
	int W = RV.vips_image_get_width(im), H = RV.vips_image_get_height(im);
	int longside = W > H ? W : H;
	VipsImage *small = NULL, *mem = NULL;
	if (max == 0 || RV.vips_resize(im, &small, longside > REG_SIDE ? (double)REG_SIDE / longside : 1.0, NULL) ||
	    !(mem = RV.vips_image_copy_memory(small))) {
		RV.vips_error_clear();
		if (small)
			RV.g_object_unref(small);
		return 0;
	}
	RV.g_object_unref(small);
	int w = RV.vips_image_get_width(mem), h = RV.vips_image_get_height(mem);
	const unsigned char *px = (const unsigned char *)(mem)->data;
	double bg[3] = { 0 };
	size_t out = 0;
	if (w < 8 || h < 8 || !reg_background(px, w, h, bg)) {
		RV.g_object_unref(mem);
		return 0;
	}
	unsigned char *mask = xcalloc((size_t)w * h, 1);
	int *lab = xcalloc((size_t)w * h, sizeof *lab);
	for (int i = 0; i < w * h; i++) {
		double v[3] = { px[i * 3], px[i * 3 + 1], px[i * 3 + 2] };
		mask[i] = reg_dist(v, bg) > REG_FG_DIST;
	}
	struct reg regs[REG_MAX];
	size_t n = reg_components(px, mask, w, h, lab, regs);
	n = reg_join(regs, n, h);
	double sx = (double)W / w, sy = (double)H / h;
	for (size_t i = 0; i < n && out < max; i++) {
		const struct reg *r = &regs[i];
		int cuts[4];
		/* a joined region holds several labels: cut only a single component */
		size_t nc = 0;
		long own = 0;
		for (int y = r->y0; y < r->y1; y++)
			for (int x = r->x0; x < r->x1; x++)
				own += lab[y * w + x] == r->label;
		if (own == r->n)
			nc = reg_cuts(px, lab, w, r, cuts, sizeof cuts / sizeof cuts[0]);
		int top = r->y0;
		for (size_t c = 0; c <= nc && out < max; c++) {
			int bottom = c < nc ? cuts[c] : r->y1;
			/* the part's own width: the columns its rows have pixels in */
			int x0 = r->x1, x1 = r->x0;
			for (int y = top; y < bottom; y++)
				for (int x = r->x0; x < r->x1; x++)
					if (lab[y * w + x] == r->label || (own != r->n && mask[y * w + x])) {
						x0 = x < x0 ? x : x0;
						x1 = x + 1 > x1 ? x + 1 : x1;
					}
			if (x1 > x0) {
				boxes[out][0] = (int)floor(x0 * sx), boxes[out][1] = (int)floor(top * sy);
				boxes[out][2] = (int)ceil(x1 * sx), boxes[out][3] = (int)ceil(bottom * sy);
				if (boxes[out][2] > W)
					boxes[out][2] = W;
				if (boxes[out][3] > H)
					boxes[out][3] = H;
				kinds[out] = nc == 0 ? "garment" : c == 0 ? "upper_body" : c == nc ? "lower_body" : "middle_body";
				out++;
			}
			top = bottom;
		}
	}
	free(mask);
	free(lab);
	RV.g_object_unref(mem);
	reg_sort(boxes, kinds, out);
	return out;
}

json_t *photo_local_items(VipsImage *im)
{
	int w = RV.vips_image_get_width(im), h = RV.vips_image_get_height(im);
	int boxes[8][4];
	const char *kinds[8];
	size_t n = photo_regions(im, boxes, kinds, 8);
	/* one region is the product photo's one garment: the whole photo
	 * describes it as the catalog's descriptors do */
	if (n < 2)
		return json_pack("[{s:[i,i,i,i], s:s, s:f}]", "bbox", 0, 0, w, h, "category", "whole_photo", "confidence",
				 1.0);
	json_t *items = json_array();
	for (size_t i = 0; i < n; i++) {
		double area = (double)(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]) / ((double)w * h);
		json_array_append_new(items, json_pack("{s:[i,i,i,i], s:s, s:f}", "bbox", boxes[i][0], boxes[i][1],
						       boxes[i][2], boxes[i][3], "category", kinds[i], "confidence",
						       round((0.5 + (area > 0.5 ? 0.5 : area)) * 100) / 100));
	}
	return items;
}
