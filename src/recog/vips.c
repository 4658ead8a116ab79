/* vips — libvips opened (dlopen) by the first decode, not linked (see
 * rvips.h), and started without its optional modules. */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "recog.h"
#include "rvips.h"

struct rvips RV;

static char vips_argv0[256] = "unde";
static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_failed;
static int vips_once_done; /* vips_start ran (in whichever thread) */
static char vips_why[300];

void photo_vips_prepare(const char *argv0)
{
	snprintf(vips_argv0, sizeof vips_argv0, "%s", argv0 ? argv0 : "unde");
	/* Debian's "never exists" home: libvips finds no module directory */
	setenv("VIPSHOME", "/nonexistent", 0);
}

/* pthread_once's callback: open libvips, look up RV, start it (libvips'
 * own init is not thread-safe). */
static void vips_start(void)
{
	char soname[64];
	/* the ABI these headers describe, as VIPS_INIT checks it */
	snprintf(soname, sizeof soname, "libvips.so.%d", VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE);
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	vips_failed = 1;
	vips_once_done = 1;
	if (!h) {
		snprintf(vips_why, sizeof vips_why, "cannot load libvips: %s", dlerror());
		return;
	}
#define X(f)                                                                                       \
	if (!(*(void **)&RV.f = dlsym(h, #f))) {                                                   \
		snprintf(vips_why, sizeof vips_why, "libvips has no %s", #f);                      \
		return;                                                                            \
	}
	RVIPS_FUNCS(X)
#undef X
	if (RV.vips_version(0) != VIPS_MAJOR_VERSION || RV.vips_version(1) < VIPS_MINOR_VERSION ||
	    RV.vips_init(vips_argv0) != 0) {
		snprintf(vips_why, sizeof vips_why, "cannot start libvips %d.%d", RV.vips_version(0), RV.vips_version(1));
		return;
	}
	vips_failed = 0;
}

int photo_vips(struct recog_err *e)
{
	pthread_once(&vips_once, vips_start);
	if (vips_failed)
		recog_fail(e, EX_SOFTWARE, "internal", "%s", vips_why);
	return vips_failed ? -1 : 0;
}

/* libvips stopped, when a decode started it: its worker threads end
 * before the process does (LeakSanitizer's exit scan otherwise meets a
 * worker mid-teardown and dies, "Tracer caught signal 11"). */
void photo_vips_shutdown(void)
{
	if (vips_once_done && !vips_failed)
		RV.vips_shutdown();
}
