/* jsonl.h — JSON lines in and out.
 *
 * The reader hands out one JSON object per line, counting lines so every
 * complaint names its line. It never holds more than max_line bytes: a longer
 * line is skipped to its end and reported, and the stream goes on. Blank lines
 * are skipped; a trailing CR is dropped. Invalid UTF-8, NUL bytes, non-objects
 * and trailing garbage are malformed. The writer emits one compact line and
 * flushes it, so a reader on the other end of a pipe sees each record at once. */
#ifndef UNDE_JSONL_H
#define UNDE_JSONL_H

#include <stdio.h>
#include <jansson.h>

#define JSONL_DEFAULT_MAX_LINE (8u * 1024u * 1024u)

enum jsonl_status { JSONL_EOF = 0, JSONL_OK = 1, JSONL_MALFORMED = -1, JSONL_IO_ERROR = -2 };

typedef struct jsonl_reader jsonl_reader;

jsonl_reader *jsonl_reader_new(FILE *in, size_t max_line);
void jsonl_reader_free(jsonl_reader *r);

/* Read the next record. On JSONL_OK *out is a new reference to an object.
 * On JSONL_MALFORMED err holds "line N: what was wrong". */
enum jsonl_status jsonl_read(jsonl_reader *r, json_t **out, char *err, size_t errlen);

/* The number of the line last returned (1-based). */
unsigned long jsonl_line_number(const jsonl_reader *r);

/* The raw text of the line last read (valid until the next read), for error
 * reports of malformed lines. */
const char *jsonl_last_line(const jsonl_reader *r, size_t *len);

/* Write obj as one compact line and flush. Returns 0, or -1 on a write error
 * (for example EPIPE when the reader went away). */
int jsonl_write(FILE *out, const json_t *obj);

#endif
