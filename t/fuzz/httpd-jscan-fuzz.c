/* httpd-jscan-fuzz.c — libFuzzer target for unde-httpd's body and answer
 * scanner (src/httpd/jscan.c): `make fuzz-httpd-jscan FUZZ_SECONDS=N`.
 *
 * jansson is the reference: jscan must accept exactly the inputs that
 * json_loadb(JSON_REJECT_DUPLICATES) decodes to an object, except numbers
 * out of a double's or long long's range, which jscan leaves to the
 * command (jscan.h), and inputs holding a NUL byte, where jansson stops
 * reading as if the input ended there (jscan refuses them). On an accepted input it also checks that every
 * top-level key is found by jscan_find with its value's span, and that the
 * top-level request_id is the one jansson sees. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jscan.h"

/* Does jansson refuse text only for a number out of range? */
static int only_range_error(const json_error_t *je)
{
	return strstr(je->text, "too big") || strstr(je->text, "overflow");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	json_error_t je;
	json_t *j = json_loadb(t, size, JSON_REJECT_DUPLICATES, &je);
	struct jscan s;
	const char *why;
	size_t where;
	int ok = jscan_object(&s, t, size, &why, &where) == 0;
	if (memchr(t, 0, size)) {
		if (ok)
			abort(); /* a NUL is never valid JSON text outside a string */
		goto out;
	}
	if (json_is_object(j) != ok && !(ok && !j && only_range_error(&je)))
		abort();
	if (ok && json_is_object(j)) {
		const char *key;
		json_t *v;
		if (s.top_n != json_object_size(j))
			abort();
		json_object_foreach(j, key, v) {
			const struct jscan_key *k = jscan_find(&s, key, strlen(key));
			if (!k || k->vs >= k->ve || k->ve > size)
				abort();
			json_t *again = json_loadb(t + k->vs, k->ve - k->vs, JSON_DECODE_ANY, NULL);
			if (!again || !json_equal(again, v))
				abort();
			json_decref(again);
		}
		json_t *rid = json_object_get(j, "request_id");
		if (!!rid != s.has_rid || (rid && json_is_string(rid) != s.rid_is_string))
			abort();
		if (json_is_string(rid) && json_string_length(rid) < sizeof s.rid &&
		    (s.ridlen != json_string_length(rid) ||
		     memcmp(s.rid, json_string_value(rid), s.ridlen) != 0))
			abort();
	}
out:
	jscan_free(&s);
	json_decref(j);
	return 0;
}
