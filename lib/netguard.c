/* netguard — the address check behind lib/http's guarded requests (see
 * netguard.h): special-purpose ranges of RFC 6890 and its IPv6 peers are
 * refused, the allow-list's networks let through. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netguard.h"

/* Do the first prefix bits of a and b agree? */
static int ng_prefix_eq(const unsigned char *a, const unsigned char *b, int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xFF << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

int netguard_parse(const char *list, struct netguard *g, char *why, size_t whylen)
{
	g->n = 0;
	const char *p = list ? list : "";
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, ", \t\r\n");
		char item[64];
		if (len >= sizeof item) {
			snprintf(why, whylen, "entry %.40s… is too long for a network", p);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		if (g->n == NETGUARD_MAX_NETS) {
			snprintf(why, whylen, "more than %d networks", NETGUARD_MAX_NETS);
			return -1;
		}
		char *slash = strchr(item, '/');
		int prefix = -1;
		if (slash) {
			char *end;
			*slash = '\0';
			long v = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end || v < 0 || v > 128) {
				snprintf(why, whylen, "%s/%s: the prefix length is not a number 0-128", item, slash + 1);
				return -1;
			}
			prefix = (int)v;
		}
		unsigned char addr[16] = { 0 };
		int family = inet_pton(AF_INET, item, addr) == 1 ? AF_INET
			     : inet_pton(AF_INET6, item, addr) == 1 ? AF_INET6
								    : 0;
		int maxp = family == AF_INET ? 32 : 128;
		if (!family || prefix > maxp) {
			snprintf(why, whylen, "%s%s%s: not an IPv4 or IPv6 network", item, slash ? "/" : "",
				 slash ? slash + 1 : "");
			return -1;
		}
		g->nets[g->n].family = family;
		memcpy(g->nets[g->n].addr, addr, sizeof addr);
		g->nets[g->n].prefix = prefix < 0 ? maxp : prefix;
		g->n++;
	}
	return 0;
}

/* The kind of a special IPv4 address (4 bytes), or NULL for a public one. */
static const char *ng_special4(const unsigned char *a)
{
	static const struct {
		unsigned char net[4];
		int prefix;
		const char *what;
	} R[] = {
		{ { 0, 0, 0, 0 }, 8, "unspecified" },      { { 10, 0, 0, 0 }, 8, "private" },
		{ { 100, 64, 0, 0 }, 10, "shared (CGNAT)" }, { { 127, 0, 0, 0 }, 8, "loopback" },
		{ { 169, 254, 0, 0 }, 16, "link-local" },  { { 172, 16, 0, 0 }, 12, "private" },
		{ { 192, 0, 0, 0 }, 24, "reserved" },      { { 192, 168, 0, 0 }, 16, "private" },
		{ { 198, 18, 0, 0 }, 15, "benchmarking" }, { { 224, 0, 0, 0 }, 4, "multicast" },
		{ { 240, 0, 0, 0 }, 4, "reserved" },
	};
	for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
		if (ng_prefix_eq(a, R[i].net, R[i].prefix))
			return R[i].what;
	return NULL;
}

/* The kind of a special IPv6 address, or NULL; IPv4 inside is judged as IPv4. */
static const char *ng_special6(const unsigned char *a)
{
	static const unsigned char zero[16] = { 0 }, mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF },
				   nat64[12] = { 0, 0x64, 0xFF, 0x9B };
	if (!memcmp(a, zero, 15))
		return a[15] == 1 ? "loopback" : a[15] == 0 ? "unspecified" : "reserved";
	if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12))
		return ng_special4(a + 12);
	if ((a[0] & 0xFE) == 0xFC)
		return "private (unique local)";
	if (a[0] == 0xFE && (a[1] & 0xC0) == 0x80)
		return "link-local";
	if (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0)
		return "site-local";
	if (a[0] == 0xFF)
		return "multicast";
	return NULL;
}

int netguard_allowed(const struct netguard *g, const struct sockaddr *sa, const char **what)
{
	const unsigned char *a;
	int family = sa->sa_family;
	if (family == AF_INET)
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (family == AF_INET6)
		a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	else {
		*what = "not an IP address";
		return 0;
	}
	const char *kind = family == AF_INET ? ng_special4(a) : ng_special6(a);
	if (!kind)
		return 1;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	/* an IPv4 network also covers that address mapped into IPv6 */
	const unsigned char *v4 = family == AF_INET ? a : !memcmp(a, mapped, 12) ? a + 12 : NULL;
	for (size_t i = 0; g && i < g->n; i++) {
		if (g->nets[i].family == family && ng_prefix_eq(a, g->nets[i].addr, g->nets[i].prefix))
			return 1;
		if (v4 && g->nets[i].family == AF_INET && ng_prefix_eq(v4, g->nets[i].addr, g->nets[i].prefix))
			return 1;
	}
	*what = kind;
	return 0;
}
