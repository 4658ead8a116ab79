/* objtool — drives lib/objstore from the shell, so t/objstore.bats can test
 * each promise against a real S3 server (and the file:// stand-in) and read
 * back with an independent client.
 *
 *   objtool put KEY [CONTENT-TYPE] < DATA    one JSON line: key, url
 *   objtool put-many KEY=FILE…               all at once; one JSON line each
 *   objtool get KEY > DATA
 *   objtool get-many KEY…                    one JSON line each: key, status, size, sha256
 *   objtool head KEY                         one JSON line: size, etag, content_type
 *   objtool delete KEY
 *   objtool url KEY | key URL | provider
 *
 * Exit: 0 done, 1 no such object, 2 the store refused or failed (a JSON
 * line with the error on stderr), 64 usage, 78 configuration. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "conf.h"
#include "log.h"
#include "objstore.h"
#include "util.h"

static int report(int status, const struct objstore_error *err)
{
	if (status == OBJSTORE_OK)
		return 0;
	json_t *e = json_pack("{s:s, s:I, s:b, s:s}", "code", err->code, "http_status",
			      (json_int_t)err->http_status, "retryable", err->retryable, "message",
			      err->message);
	char *s = json_dumps(e, JSON_COMPACT);
	fprintf(stderr, "%s\n", s);
	free(s);
	json_decref(e);
	return status == OBJSTORE_NOT_FOUND ? 1 : 2;
}

static void put_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static int read_all(FILE *f, struct buf *b)
{
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(b, chunk, n);
	return ferror(f) ? -1 : 0;
}

static void sha_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int main(int argc, char **argv)
{
	log_init("objtool");
	if (argc < 2) {
		fprintf(stderr, "usage: objtool put|put-many|get|get-many|head|delete|url|key|provider …\n");
		return EX_USAGE;
	}
	if (conf_load_env(NULL) != 0)
		return EX_CONFIG;
	const char *cmd = argv[1];
	struct objstore *os = objstore_open();
	struct objstore_error err = { 0 };
	int rc = 0;

	if (strcmp(cmd, "put") == 0 && argc >= 3) {
		struct buf b = { 0 };
		read_all(stdin, &b);
		int st = objstore_put(os, argv[2], b.data ? b.data : "", b.len, argc > 3 ? argv[3] : NULL,
				      &err);
		if ((rc = report(st, &err)) == 0) {
			char *url = objstore_url(os, argv[2]);
			put_line(json_pack("{s:s, s:s, s:I}", "key", argv[2], "url", url, "size",
					   (json_int_t)b.len));
			free(url);
		}
		buf_free(&b);
	} else if (strcmp(cmd, "put-many") == 0 && argc >= 3) {
		size_t n = (size_t)argc - 2;
		struct objstore_put_item *it = xcalloc(n, sizeof *it);
		struct buf *bufs = xcalloc(n, sizeof *bufs);
		char **keys = xcalloc(n, sizeof *keys);
		for (size_t i = 0; i < n; i++) {
			keys[i] = xstrdup(argv[i + 2]);
			char *eq = strchr(keys[i], '=');
			if (!eq) {
				fprintf(stderr, "put-many takes KEY=FILE\n");
				return EX_USAGE;
			}
			*eq = '\0';
			FILE *f = fopen(eq + 1, "rb");
			if (!f || read_all(f, &bufs[i]) != 0) {
				fprintf(stderr, "cannot read %s\n", eq + 1);
				return EX_NOINPUT;
			}
			fclose(f);
			it[i] = (struct objstore_put_item){ .key = keys[i], .data = bufs[i].data,
							    .len = bufs[i].len, .content_type = "image/jpeg" };
		}
		size_t failed = objstore_put_many(os, it, n, (int)conf_long("OBJTOOL_CONCURRENCY", 4, 1, 64));
		for (size_t i = 0; i < n; i++) {
			put_line(json_pack("{s:s, s:s, s:s}", "key", it[i].key, "status",
					   it[i].status == OBJSTORE_OK ? "ok" : "error", "error",
					   it[i].err.code));
			buf_free(&bufs[i]);
			free(keys[i]);
		}
		free(it);
		free(bufs);
		free(keys);
		rc = failed ? 2 : 0;
	} else if (strcmp(cmd, "get") == 0 && argc >= 3) {
		struct buf b = { 0 };
		int st = objstore_get(os, argv[2], &b, 0, &err);
		if ((rc = report(st, &err)) == 0)
			fwrite(b.data ? b.data : "", 1, b.len, stdout);
		buf_free(&b);
	} else if (strcmp(cmd, "get-many") == 0 && argc >= 3) {
		size_t n = (size_t)argc - 2;
		struct objstore_get_item *it = xcalloc(n, sizeof *it);
		for (size_t i = 0; i < n; i++)
			it[i].key = argv[i + 2];
		size_t failed = objstore_get_many(os, it, n, 4);
		for (size_t i = 0; i < n; i++) {
			char hex[65] = "";
			if (it[i].status == OBJSTORE_OK)
				sha_hex(it[i].body.data ? it[i].body.data : "", it[i].body.len, hex);
			put_line(json_pack("{s:s, s:s, s:I, s:s}", "key", it[i].key, "status",
					   it[i].status == OBJSTORE_OK ? "ok"
					   : it[i].status == OBJSTORE_NOT_FOUND ? "not_found" : "error",
					   "size", (json_int_t)it[i].body.len, "sha256", hex));
			buf_free(&it[i].body);
		}
		free(it);
		rc = failed ? 2 : 0;
	} else if (strcmp(cmd, "head") == 0 && argc >= 3) {
		struct objstore_info info;
		int st = objstore_head(os, argv[2], &info, &err);
		if ((rc = report(st, &err)) == 0)
			put_line(json_pack("{s:s, s:I, s:s, s:s}", "key", argv[2], "size",
					   (json_int_t)info.size, "etag", info.etag, "content_type",
					   info.content_type));
	} else if (strcmp(cmd, "delete") == 0 && argc >= 3) {
		rc = report(objstore_delete(os, argv[2], &err), &err);
	} else if (strcmp(cmd, "url") == 0 && argc >= 3) {
		char *url = objstore_url(os, argv[2]);
		printf("%s\n", url);
		free(url);
	} else if (strcmp(cmd, "key") == 0 && argc >= 3) {
		char *key = objstore_key_from_url(os, argv[2]);
		if (key)
			printf("%s\n", key);
		rc = key ? 0 : 1;
		free(key);
	} else if (strcmp(cmd, "provider") == 0) {
		printf("%s\n", objstore_provider(os));
	} else {
		fprintf(stderr, "objtool: unknown command or missing argument\n");
		rc = EX_USAGE;
	}
	objstore_close(os);
	return rc;
}
