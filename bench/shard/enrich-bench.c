/* enrich-bench.c — per-message cost of the §13 SYNC rules (salience_check
 * + classify_memory), of the rule-based memory_snippet and of the local
 * embedder, on the labelled set's messages, in one process on one core.
 * Built and run by bench/shard/enrich.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embed_local.h"
#include "shardc.h"

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 64;
	FILE *f = fopen(argv[1], "r");
	if (!f)
		return 66;
	char *texts[512], line[2048];
	int n = 0;
	while (n < 512 && fgets(line, sizeof line, f)) {
		char *tab = strchr(line, '\t');
		if (line[0] == '#' || !tab)
			continue;
		tab[1 + strcspn(tab + 1, "\n")] = '\0';
		texts[n++] = strdup(tab + 1);
	}
	fclose(f);
	const char *type;
	double conf;
	shard_classify_memory("warm up", &type, &conf); /* stems the lexicons */
	int rounds = 200;
	double t0 = now_us();
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			shard_salience("user", texts[i]);
			shard_classify_memory(texts[i], &type, &conf);
		}
	double rules = (now_us() - t0) / (rounds * n);
	t0 = now_us();
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++)
			free(shard_memory_snippet(texts[i], 80));
	double snip = (now_us() - t0) / (rounds * n);
	static float v[EMBED_LOCAL_DIM];
	t0 = now_us();
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++)
			embed_local(texts[i], strlen(texts[i]), v);
	double emb = (now_us() - t0) / (rounds * n);
	printf("messages %d x %d rounds\n", n, rounds);
	printf("sync rules (salience + classify_memory): %.2f us/message\n", rules);
	printf("memory_snippet (rule):                   %.2f us/message\n", snip);
	printf("local embedder (local-ngram-v1):         %.2f us/message = %.0f messages/s/core\n", emb,
	       1e6 / emb);
	return 0;
}
