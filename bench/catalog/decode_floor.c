/* decode_floor — what decoding one JPEG costs libjpeg(-turbo) at each DCT
 * scale, in CPU milliseconds: the floor under any collage made from it.
 *
 * Both unde-collage and Pillow's draft mode decode an original at the
 * smallest DCT scale that is still at least the part's size; the entropy
 * (Huffman) decoding of the whole file is done whatever the scale. This
 * shows how much of the decode that is, and so the best ratio per
 * CPU-second any same-output collage can reach against Pillow.
 *
 *   cc -O2 -o /tmp/decode_floor bench/catalog/decode_floor.c -ljpeg
 *   /tmp/decode_floor photo.jpg [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: decode_floor FILE.jpg [rounds]\n");
		return 64;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 66;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	unsigned char *d = malloc((size_t)n);
	if (!d || fread(d, 1, (size_t)n, f) != (size_t)n)
		return 74;
	fclose(f);
	int rounds = argc > 2 ? atoi(argv[2]) : 40;
	int scales[] = { 8, 4, 2, 1 };
	for (int i = 0; i < 4; i++)
		run(d, (size_t)n, scales[i], 1, rounds);
	run(d, (size_t)n, 4, 0, rounds);
	free(d);
	return 0;
}
