/* key.h — the catalog's object keys (originals/{brand}/{external_id}/…,
 * collages/…), shared by unde-download and unde-collage. */
#ifndef UNDE_CATALOG_KEY_H
#define UNDE_CATALOG_KEY_H

/* Can s be a segment of an object key: a brand (lower case, digits) or,
 * with id, an external_id (also upper case, -, _ and .), as unde-apify
 * writes them; never empty, "." or "..", at most 100 characters. */
int catalog_key_part_ok(const char *s, int id);

#endif
