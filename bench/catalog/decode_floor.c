/* decode_floor — what decoding one JPEG costs libjpeg(-turbo) at each DCT
 * scale, in CPU milliseconds: the floor under any collage made from it.
 *
 * Both unde-collage and Pillow's draft mode decode an original at the
 * smallest DCT scale that is still at least the part's size; the entropy
 * (Huffman) decoding of the whole file is done whatever the scale. This
 * shows how much of the decode that is, and so the best ratio per
 * CPU-second any same-output collage can reach against Pillow.
 *
 * With --collage it times what libjpeg alone must do for one collage, as
 * unde-collage calls it: each original decoded to raw planes (no colour
 * conversion) at the smallest of 1/8, 1/4, 1/2, 1 that is still at least
 * the collage's height, and the collage itself (decoded once to its planes
 * beforehand) encoded again at quality 85 from raw planes. That sum is the
 * least CPU a collage of those originals can cost with libjpeg(-turbo);
 * bench/catalog/run divides Pillow's cost by it: the highest ratio per
 * CPU-second any same-output collage can reach.
 *
 *   cc -O2 -o /tmp/decode_floor bench/catalog/decode_floor.c -ljpeg
 *   /tmp/decode_floor photo.jpg [rounds]
 *   /tmp/decode_floor --collage COLLAGE.jpg ORIGINAL.jpg... [--rounds N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

/* CPU time of this process, in ms. */
static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Decode data rounds times at num/8 and print the mean CPU ms. */
static void run(const unsigned char *data, size_t len, int num, int fancy, int rounds)
{
	double t0 = cpu_ms();
	unsigned w = 0, h = 0;
	for (int k = 0; k < rounds; k++) {
		struct jpeg_decompress_struct c;
		struct jpeg_error_mgr e;
		c.err = jpeg_std_error(&e);
		jpeg_create_decompress(&c);
		jpeg_mem_src(&c, data, (unsigned long)len);
		jpeg_read_header(&c, TRUE);
		c.out_color_space = JCS_RGB;
		c.scale_num = (unsigned)num;
		c.scale_denom = 8;
		c.do_fancy_upsampling = (boolean)fancy;
		jpeg_start_decompress(&c);
		w = c.output_width;
		h = c.output_height;
		JSAMPROW row = malloc((size_t)w * 3);
		if (!row)
			abort();
		while (c.output_scanline < c.output_height)
			jpeg_read_scanlines(&c, &row, 1);
		free(row);
		jpeg_finish_decompress(&c);
		jpeg_destroy_decompress(&c);
	}
	printf("{\"scale\":\"%d/8\",\"fancy_upsampling\":%d,\"output\":\"%ux%u\",\"cpu_ms\":%.2f}\n", num,
	       fancy, w, h, (cpu_ms() - t0) / rounds);
}

/* The whole of FILE in *len bytes (malloc'd), or exit 66/74. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(66);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	unsigned char *d = n > 0 ? malloc((size_t)n) : NULL;
	if (!d || fread(d, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: cannot read\n", path);
		exit(74);
	}
	fclose(f);
	*len = (size_t)n;
	return d;
}

/* A JPEG's components as raw planes: the decoding of one MCU row at a time
 * into rows (each plane's rows 8192 samples wide at most), as unde-collage
 * feeds its resampler. When planes is not NULL, every row is also kept
 * there (whole planes, stride[ci] apart, for --collage's encoder input).
 * Returns the number of components. */
static int decode_raw(const unsigned char *data, size_t len, int min_height, unsigned char **planes,
		      size_t *stride, int *w, int *h, int *hs, int *vs)
{
	static unsigned char rowbuf[3][32][8192];
	struct jpeg_decompress_struct c;
	struct jpeg_error_mgr e;
	c.err = jpeg_std_error(&e);
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, data, (unsigned long)len);
	jpeg_read_header(&c, TRUE);
	c.raw_data_out = TRUE;
	c.scale_denom = 8;
	for (c.scale_num = 1; c.scale_num < 8; c.scale_num *= 2) {
		jpeg_calc_output_dimensions(&c);
		if ((int)c.output_height >= min_height)
			break;
	}
	jpeg_start_decompress(&c);
	int nc = c.num_components;
	JSAMPROW rows[3][32];
	JSAMPARRAY arr[3] = { rows[0], rows[1], rows[2] };
	for (int ci = 0; ci < nc; ci++)
		if (c.comp_info[ci].width_in_blocks * c.comp_info[ci].DCT_scaled_size > 8192 ||
		    c.comp_info[ci].v_samp_factor * c.comp_info[ci].DCT_scaled_size > 32) {
			fprintf(stderr, "decode_floor: an unusual JPEG\n");
			exit(65);
		}
	if (w) {
		*w = (int)c.output_width;
		*h = (int)c.output_height;
		*hs = c.comp_info[0].h_samp_factor;
		*vs = c.comp_info[0].v_samp_factor;
	}
	JDIMENSION done = 0;
	while (c.output_scanline < c.output_height) {
		for (int ci = 0; ci < nc; ci++) {
			jpeg_component_info *k = &c.comp_info[ci];
			int n = k->v_samp_factor * k->DCT_scaled_size;
			size_t top = done / (JDIMENSION)(c.max_v_samp_factor / k->v_samp_factor);
			for (int r = 0; r < n; r++)
				rows[ci][r] = planes ? planes[ci] + (top + (size_t)r) * stride[ci] : rowbuf[ci][r];
		}
		JDIMENSION got = jpeg_read_raw_data(&c, arr, (JDIMENSION)(c.max_v_samp_factor * c.min_DCT_scaled_size));
		if (got == 0)
			break;
		done += got;
	}
	jpeg_abort_decompress(&c);
	jpeg_destroy_decompress(&c);
	return nc;
}

/* --collage: see the top of the file. */
static int collage_floor(int argc, char **argv)
{
	int rounds = 40, n = 0;
	size_t clen, len[16];
	unsigned char *orig[16];
	const char *collage = argv[2];
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
			continue;
		}
		if (n == 16) {
			fprintf(stderr, "decode_floor: at most 16 originals\n");
			return 64;
		}
		orig[n] = slurp(argv[i], &len[n]);
		n++;
	}
	if (n == 0 || rounds < 1) {
		fprintf(stderr, "usage: decode_floor --collage COLLAGE.jpg ORIGINAL.jpg... [--rounds N]\n");
		return 64;
	}
	unsigned char *cdata = slurp(collage, &clen);
	/* the collage's own planes, padded to whole MCUs, as the encoder's input */
	int w, h, hs, vs;
	decode_raw(cdata, clen, 1 << 30, NULL, NULL, &w, &h, &hs, &vs);
	int mw = 8 * hs, mh = 8 * vs, pw = (w + mw - 1) / mw * mw, ph = (h + mh - 1) / mh * mh;
	size_t stride[3] = { (size_t)pw, (size_t)(pw / hs), (size_t)(pw / hs) };
	unsigned char *planes[3];
	for (int ci = 0; ci < 3; ci++)
		if (!(planes[ci] = calloc(stride[ci], (size_t)(ci ? ph / vs : ph) + 32)))
			return 71;
	if (decode_raw(cdata, clen, 1 << 30, planes, stride, NULL, NULL, NULL, NULL) != 3) {
		fprintf(stderr, "decode_floor: %s is not a YCbCr JPEG\n", collage);
		return 65;
	}
	double t0 = cpu_ms();
	for (int k = 0; k < rounds; k++)
		for (int i = 0; i < n; i++)
			decode_raw(orig[i], len[i], h, NULL, NULL, NULL, NULL, NULL, NULL);
	double t1 = cpu_ms();
	unsigned long out_len = 0;
	for (int k = 0; k < rounds; k++) {
		struct jpeg_compress_struct c;
		struct jpeg_error_mgr e;
		unsigned char *mem = NULL;
		unsigned long mlen = 0;
		c.err = jpeg_std_error(&e);
		jpeg_create_compress(&c);
		jpeg_mem_dest(&c, &mem, &mlen);
		c.image_width = (JDIMENSION)w;
		c.image_height = (JDIMENSION)h;
		c.input_components = 3;
		c.in_color_space = JCS_YCbCr;
		jpeg_set_defaults(&c);
		jpeg_set_quality(&c, 85, TRUE);
		c.comp_info[0].h_samp_factor = hs;
		c.comp_info[0].v_samp_factor = vs;
		c.raw_data_in = TRUE;
		jpeg_start_compress(&c, TRUE);
		JSAMPROW rows[3][16];
		JSAMPARRAY arr[3] = { rows[0], rows[1], rows[2] };
		for (int y = 0; y < h; y += mh) {
			for (int ci = 0; ci < 3; ci++)
				for (int r = 0; r < (ci ? 8 : mh); r++)
					rows[ci][r] = planes[ci] + (size_t)((ci ? y / vs : y) + r) * stride[ci];
			jpeg_write_raw_data(&c, arr, (JDIMENSION)mh);
		}
		jpeg_finish_compress(&c);
		jpeg_destroy_compress(&c);
		out_len = mlen;
		free(mem);
	}
	double t2 = cpu_ms();
	printf("{\"bench\":\"collage_libjpeg_floor\",\"originals\":%d,\"collage\":\"%dx%d\",\"rounds\":%d,"
	       "\"decode_ms\":%.3f,\"encode_ms\":%.3f,\"floor_ms\":%.3f,\"encoded_bytes\":%lu}\n",
	       n, w, h, rounds, (t1 - t0) / rounds, (t2 - t1) / rounds, (t2 - t0) / rounds, out_len);
	for (int i = 0; i < n; i++)
		free(orig[i]);
	for (int ci = 0; ci < 3; ci++)
		free(planes[ci]);
	free(cdata);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--collage") == 0)
		return collage_floor(argc, argv);
	if (argc < 2) {
		fprintf(stderr, "usage: decode_floor FILE.jpg [rounds]\n"
				"       decode_floor --collage COLLAGE.jpg ORIGINAL.jpg... [--rounds N]\n");
		return 64;
	}
	size_t n;
	unsigned char *d = slurp(argv[1], &n);
	int rounds = argc > 2 ? atoi(argv[2]) : 40;
	int scales[] = { 8, 4, 2, 1 };
	for (int i = 0; i < 4; i++)
		run(d, n, scales[i], 1, rounds);
	run(d, n, 4, 0, rounds);
	free(d);
	return 0;
}
