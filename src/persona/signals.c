/* signals.c — the SignalBuffer's resolution of one exchange: signals are
 * nodes, CONFLICTS are edges, and each connected component keeps only its
 * most conservative signal type (humor_ignored beats humor_positive);
 * repeats of the surviving type collapse to one (debouncing). The rest is
 * discarded. Pure: the caller reads and deletes the buffer. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "persona.h"
#include "util.h"

static int find(int *parent, int i)
{
	while (parent[i] != i)
		i = parent[i] = parent[parent[i]];
	return i;
}

int signals_resolve(const char *const *types, int n, int *keep)
{
	int *parent = xcalloc((size_t)n + 1, sizeof *parent);
	for (int i = 0; i < n; i++)
		parent[i] = i;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (!strcmp(types[i], types[j]) || contract_conflicts(types[i], types[j]))
				parent[find(parent, i)] = find(parent, j);
	int survivors = 0, *seen = xcalloc((size_t)n + 1, sizeof *seen);
	for (int i = 0; i < n; i++)
		keep[i] = 0;
	for (int i = 0; i < n; i++) {
		int root = find(parent, i), best = -1;
		if (seen[root])
			continue;
		seen[root] = 1;
		/* the component's most conservative member, the first seen on a tie */
		for (int j = 0; j < n; j++) {
			if (find(parent, j) != root)
				continue;
			const struct signal_effect *e = contract_signal(types[j]);
			assert(e);
			if (best < 0 || e->conservative > contract_signal(types[best])->conservative)
				best = j;
		}
		keep[best] = 1;
		survivors++;
	}
	free(seen);
	free(parent);
	return survivors;
}
