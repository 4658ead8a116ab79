/* netguard.h — which addresses a fetch of a URL someone else gave us may
 * connect to (SSRF): not loopback, private, link-local, CGNAT, multicast,
 * reserved or unspecified ones (IPv4, IPv6, and IPv4 inside IPv6 as
 * ::ffff:a.b.c.d or 64:ff9b::a.b.c.d), unless an allow-list of networks
 * names them. lib/http checks the address it really connects to (after DNS,
 * on every redirect) when a request carries a guard. */
#ifndef UNDE_NETGUARD_H
#define UNDE_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_MAX_NETS 32

struct netguard {
	size_t n;
	struct {
		int family; /* AF_INET or AF_INET6 */
		unsigned char addr[16];
		int prefix;
	} nets[NETGUARD_MAX_NETS];
};

/* Parse a list of networks "127.0.0.0/8, ::1, 10.1.2.3" (an address alone
 * is its /32 or /128; separated by commas or spaces) into g. 0, or -1 with
 * why saying which entry is wrong. NULL or "" is the empty list. */
int netguard_parse(const char *list, struct netguard *g, char *why, size_t whylen);

/* Is a connection to sa allowed? 1 yes; 0 no, with *what set to the kind of
 * address it is ("loopback", "private", …). */
int netguard_allowed(const struct netguard *g, const struct sockaddr *sa, const char **what);

#endif
