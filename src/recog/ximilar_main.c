/* unde-ximilar — the Ximilar Gateway (spec §9), the only holder of the
 * Ximilar key:
 *
 *   unde-ximilar detect    POST /detect {url, user_id?} → items (crops stored)
 *   unde-ximilar tag       POST /tag {url, category?} → type, color, …
 *   unde-ximilar search    POST /search {crop_url, category?, top_k?} → candidates
 *   unde-ximilar metrics   §19's gateway metrics as Prometheus text
 *
 * The work is in gw.c; the dispatch is cmd.c's. */
#include "config.h"

#include "recog.h"

int main(int argc, char **argv)
{
	static const struct recog_sub subs[] = {
		{ "detect",
		  "detect: {url, user_id?} → {items:[{crop_url, bbox, category, confidence}], width, "
		  "height, provider}",
		  gw_detect },
		{ "tag", "tag: {url, category?} → {type, color, color_hex, material, pattern, colors, provider}",
		  gw_tag },
		{ "search",
		  "search: {crop_url, category?, top_k?} → {candidates:[{sku_id, score, distance, "
		  "image_urls, metadata}], provider}",
		  gw_search },
		{ NULL, NULL, NULL },
	};
	return recog_main("unde-ximilar",
			  "Usage: unde-ximilar detect|tag|search [--online] [--env-file FILE]\n"
			  "       unde-ximilar metrics\n"
			  "The Ximilar Gateway (spec §9): fashion detection (crops stored in the private\n"
			  "user-media bucket), tagging and visual search; the local provider without\n"
			  "XIMILAR_API_TOKEN or when Ximilar fails. See unde-ximilar(1).\n",
			  subs, argc, argv);
}
