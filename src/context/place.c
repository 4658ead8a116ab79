/* place.c — malls, stores and great-circle distance (see place.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "place.h"
#include "util.h"

#define EARTH_RADIUS_M 6371008.8

double geo_distance_m(double lat1, double lng1, double lat2, double lng2)
{
	double r = M_PI / 180;
	double dlat = (lat2 - lat1) * r, dlng = (lng2 - lng1) * r;
	double a = sin(dlat / 2) * sin(dlat / 2) +
		   cos(lat1 * r) * cos(lat2 * r) * sin(dlng / 2) * sin(dlng / 2);
	return 2 * EARTH_RADIUS_M * asin(fmin(1, sqrt(a)));
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int places_load(PGconn *db, struct places *p)
{
	memset(p, 0, sizeof *p);
	PGresult *r = pg_query(db,
			       "SELECT id, name, coalesce(country, ''), timezone, latitude::float8, "
			       "longitude::float8, radius_m, opening_hours::text FROM malls ORDER BY id",
			       0, NULL);
	if (!r)
		return -1;
	p->nmalls = (size_t)PQntuples(r);
	p->malls = xcalloc(p->nmalls ? p->nmalls : 1, sizeof *p->malls);
	for (size_t i = 0; i < p->nmalls; i++) {
		struct mall *m = &p->malls[i];
		int row = (int)i;
		copy(m->id, sizeof m->id, PQgetvalue(r, row, 0));
		copy(m->name, sizeof m->name, PQgetvalue(r, row, 1));
		copy(m->country, sizeof m->country, PQgetvalue(r, row, 2));
		copy(m->tz, sizeof m->tz, PQgetvalue(r, row, 3));
		m->lat = strtod(PQgetvalue(r, row, 4), NULL);
		m->lng = strtod(PQgetvalue(r, row, 5), NULL);
		m->radius_m = atoi(PQgetvalue(r, row, 6));
		if (!PQgetisnull(r, row, 7))
			m->hours = json_loads(PQgetvalue(r, row, 7), 0, NULL);
	}
	PQclear(r);
	r = pg_query(db,
		     "SELECT id, coalesce(mall_id, ''), name, coalesce(brand, ''), floor, "
		     "latitude::float8, longitude::float8 FROM stores ORDER BY id",
		     0, NULL);
	if (!r)
		return -1;
	p->nstores = (size_t)PQntuples(r);
	p->stores = xcalloc(p->nstores ? p->nstores : 1, sizeof *p->stores);
	for (size_t i = 0; i < p->nstores; i++) {
		struct store *s = &p->stores[i];
		int row = (int)i;
		copy(s->id, sizeof s->id, PQgetvalue(r, row, 0));
		copy(s->mall_id, sizeof s->mall_id, PQgetvalue(r, row, 1));
		copy(s->name, sizeof s->name, PQgetvalue(r, row, 2));
		copy(s->brand, sizeof s->brand, PQgetvalue(r, row, 3));
		if (!PQgetisnull(r, row, 4))
			s->floor = atoi(PQgetvalue(r, row, 4)), s->has_floor = 1;
		if (!PQgetisnull(r, row, 5) && !PQgetisnull(r, row, 6)) {
			s->lat = strtod(PQgetvalue(r, row, 5), NULL);
			s->lng = strtod(PQgetvalue(r, row, 6), NULL);
			s->has_pos = 1;
		}
	}
	PQclear(r);
	return 0;
}

void places_free(struct places *p)
{
	for (size_t i = 0; i < p->nmalls; i++)
		json_decref(p->malls[i].hours);
	free(p->malls);
	free(p->stores);
	memset(p, 0, sizeof *p);
}

const struct mall *places_nearest_mall(const struct places *p, double lat, double lng,
				       double *dist_m)
{
	const struct mall *best = NULL;
	double bd = INFINITY;
	for (size_t i = 0; i < p->nmalls; i++) {
		double d = geo_distance_m(lat, lng, p->malls[i].lat, p->malls[i].lng);
		if (d < bd)
			bd = d, best = &p->malls[i];
	}
	*dist_m = bd;
	return best;
}

const struct mall *places_mall(const struct places *p, const char *id)
{
	for (size_t i = 0; i < p->nmalls; i++)
		if (strcmp(p->malls[i].id, id) == 0)
			return &p->malls[i];
	return NULL;
}

const struct store *places_nearest_store(const struct places *p, const char *mall_id,
					 double lat, double lng, double *dist_m)
{
	const struct store *best = NULL;
	double bd = INFINITY;
	for (size_t i = 0; i < p->nstores; i++) {
		const struct store *s = &p->stores[i];
		if (!s->has_pos || strcmp(s->mall_id, mall_id) != 0)
			continue;
		double d = geo_distance_m(lat, lng, s->lat, s->lng);
		if (d < bd)
			bd = d, best = s;
	}
	*dist_m = bd;
	return best;
}
