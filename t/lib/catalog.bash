# t/lib/catalog.bash — helpers shared by the catalog tests (unde-apify,
# unde-download, unde-collage): a migrated staging database per test and
# short SQL checks.

# catalog_db — create a fresh staging database, migrate it, export
# STAGING_DB_URL pointing at it.
catalog_db() {
	local name url
	name="s${BATS_TEST_NUMBER:-0}_$RANDOM$RANDOM"
	url=$(pg_createdb "$name") || return 1
	unde-db migrate staging --url "$url" >/dev/null || return 1
	export STAGING_DB_URL=$url
}

# sql QUERY — run QUERY on the staging database; rows as a|b|c lines.
sql() {
	psql -XAtq -v ON_ERROR_STOP=1 "$STAGING_DB_URL" -c "$1"
}

# catalog_items N BRAND CDN_URL [SPEC] [PHOTOS] — N Apify-like items as JSON lines.
catalog_items() {
	local n=$1 brand=$2 cdn=$3 spec=${4:-jpeg-600x800} photos=${5:-3}
	jq -nc --argjson n "$n" --arg b "$brand" --arg cdn "$cdn" --arg spec "$spec" \
		--argjson k "$photos" '
		range(1; $n + 1) as $i
		| ("\($b | ascii_upcase)\($i)") as $id
		| {id: $id, name: "\($b) item \($i)", brand: $b, price: (1000 + $i),
		   currency: "KZT", category: ["Women", "Tops"], color: "Red",
		   sizes: ["S", "M"], composition: "100% cotton",
		   images: [range(1; $k + 1) as $p | "\($cdn)/p/\($spec)/\($b)/\($id)/\($p).jpg"]}'
}
