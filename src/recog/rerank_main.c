/* unde-rerank — the LLM Reranker (spec §10), the only caller of Gemini for
 * recognition:
 *
 *   unde-rerank tag       POST /tag {url} → style, occasion, brand_style, season
 *   unde-rerank rerank    POST /rerank {crop_url, candidates, tags} → ranked
 *   unde-rerank metrics   §19's reranker metrics as Prometheus text
 *
 * The work is in rr.c; the dispatch is cmd.c's. */
#include "config.h"

#include "recog.h"

int main(int argc, char **argv)
{
	static const struct recog_sub subs[] = {
		{ "tag", "tag: {url} → {style, occasion, brand_style, season, provider}", rr_tag },
		{ "rerank",
		  "rerank: {crop_url, candidates, tags} → {ranked:[{sku_id, score, visual, semantic, "
		  "reason}], provider}",
		  rr_rerank },
		{ NULL, NULL, NULL },
	};
	return recog_main("unde-rerank",
			  "Usage: unde-rerank tag|rerank [--online] [--env-file FILE]\n"
			  "       unde-rerank metrics\n"
			  "The LLM Reranker (spec §10): style tags and the visual rerank of search\n"
			  "candidates with Gemini, or locally (descriptor similarity) without\n"
			  "GEMINI_API_KEY or when Gemini fails. See unde-rerank(1).\n",
			  subs, argc, argv);
}
