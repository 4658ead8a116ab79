# t/lib/catalog.bash — helpers shared by the catalog tests (unde-apify,
# unde-download, unde-collage): a migrated staging database per test, the
# per-test store and fakes, short SQL checks.

# catalog_db — create a fresh staging database, migrate it, export
# STAGING_DB_URL pointing at it.
# Each step waits on the server within libpq's connect timeout
# (PGCONNECT_TIMEOUT, 60 s unless set) and a failure says which step.
catalog_db() {
	local name url
	name="s${BATS_TEST_NUMBER:-0}_$RANDOM$RANDOM"
	url=$(PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-60} pg_createdb "$name") || {
		echo "catalog_db: step \"createdb $name\" failed" >&2
		return 1
	}
	PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-60} unde-db migrate staging --url "$url" >/dev/null || {
		echo "catalog_db: step \"unde-db migrate staging\" on $name failed" >&2
		return 1
	}
	export STAGING_DB_URL=$url
}

# catalog_setup PREFIX FAKE… — per test, for the tests that store photos:
# the named fakes reset, a fresh staging database, fast retries, CDN set
# to the fake CDN's URL, and an S3 bucket of the test's own (moto) in
# S3_BUCKET, named PREFIX<test number>-<random>.
catalog_setup() {
	local prefix=$1 f
	shift
	for f in "$@"; do
		fake_reset "$f" || { echo "catalog_setup: step \"reset fake $f\" failed" >&2; return 1; }
	done
	catalog_db || return 1
	export HTTP_BACKOFF_BASE_MS=20 CDN=$FAKE_CDN_URL
	export S3_BUCKET="$prefix${BATS_TEST_NUMBER}-$RANDOM"
	moto_aws s3api create-bucket --bucket "$S3_BUCKET" >/dev/null || {
		echo "catalog_setup: step \"create bucket $S3_BUCKET\" failed (deadline ${MOTO_STEP_TIMEOUT:-180} s)" >&2
		return 1
	}
}

# catalog_setup_file FAKE… — once per file, for the tests that store
# photos: PostgreSQL, the named fakes (t/fakes/FAKE.py each) and the
# S3-compatible server; catalog_teardown_file stops them.
catalog_setup_file() {
	local f
	pg_start
	for f in "$@"; do
		fake_start "$f" "$f.py"
	done
	moto_start unde-images
}

# catalog_teardown_file — stop what those tests' setup_file started: the
# fakes, moto, PostgreSQL.
catalog_teardown_file() {
	fake_stop_all
	moto_stop
	pg_stop
	unde_teardown_file
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
