/* jsonl-fuzz — libFuzzer target for the JSON-lines reader and the env-file
 * parser: arbitrary bytes must never crash, leak or overrun, and every
 * record handed out must be an object. Built and run by `make fuzz-lib`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "jsonl.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		return 0;
	jsonl_reader *r = jsonl_reader_new(f, 256);
	char err[512];
	json_t *rec;
	enum jsonl_status st;
	while ((st = jsonl_read(r, &rec, err, sizeof err)) != JSONL_EOF && st != JSONL_IO_ERROR) {
		if (st == JSONL_OK) {
			if (!json_is_object(rec))
				abort();
			json_decref(rec);
		} else if (strncmp(err, "line ", 5) != 0) {
			abort();
		}
	}
	jsonl_reader_free(r);
	fclose(f);

	/* the same bytes as an env file (variables it sets stay set: harmless) */
	char path[] = "/tmp/unde-fuzz-env.XXXXXX";
	int fd = mkstemp(path);
	if (fd >= 0) {
		if (write(fd, data, size) == (ssize_t)size)
			conf_load_file(path, 1, err, sizeof err);
		close(fd);
		unlink(path);
	}
	char red[64];
	char *s = strndup((const char *)data, size);
	if (s) {
		conf_redact_url(s, red, sizeof red);
		free(s);
	}
	return 0;
}
