/* place.h — malls and stores from production (sql/production/0005), and
 * where a GPS fix is among them (great-circle distance). */
#ifndef UNDE_CONTEXT_PLACE_H
#define UNDE_CONTEXT_PLACE_H

#include <jansson.h>
#include <libpq-fe.h>

struct mall {
	char id[101], name[201], country[11], tz[65];
	double lat, lng;
	int radius_m;
	json_t *hours; /* opening_hours, or NULL */
};

struct store {
	char id[101], mall_id[101], name[201], brand[51];
	int floor, has_floor, has_pos;
	double lat, lng;
};

struct places {
	struct mall *malls;
	size_t nmalls;
	struct store *stores;
	size_t nstores;
};

/* Load every mall and store. Returns 0, or -1 (logged). */
int places_load(PGconn *db, struct places *p);
void places_free(struct places *p);

/* Metres between two points on a sphere of the Earth's mean radius. */
double geo_distance_m(double lat1, double lng1, double lat2, double lng2);

/* The nearest mall to lat/lng (NULL when there is none); *dist_m set. */
const struct mall *places_nearest_mall(const struct places *p, double lat, double lng,
				       double *dist_m);
const struct mall *places_mall(const struct places *p, const char *id);
/* The nearest store of mall with a position, or NULL. */
const struct store *places_nearest_store(const struct places *p, const char *mall_id,
					 double lat, double lng, double *dist_m);

#endif
