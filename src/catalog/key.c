/* The catalog's object-key segments (key.h). */
#include "config.h"

#include <string.h>

#include "key.h"

int catalog_key_part_ok(const char *s, int id)
{
	if (!*s || strlen(s) > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      (id && ((*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' || *s == '.'))))
			return 0;
	return 1;
}
