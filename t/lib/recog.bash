# t/lib/recog.bash — the catalog the recognition tests search: generated
# product photos in the catalog bucket (moto), the staging rows
# unde-ximilar-sync reads, production's products, and the local collection
# (product_descriptors) written by the real unde-ximilar-sync.
#
#   setup_file() { pg_start; moto_start; recog_catalog 8; }
#   recog_street FILE I   # a "street photo" of product I: resized, cropped, re-encoded

# Colours of the products: name and RGB.
RECOG_COLOURS=("Red:200 30 35" "Navy:25 35 80" "Green:40 140 60" "Yellow:240 210 40"
	"Black:20 20 20" "Pink:240 150 180" "Blue:40 80 200" "Orange:240 130 30")

# recog_colour I — the colour name of product I.
recog_colour() { local c=${RECOG_COLOURS[$(($1 % 8))]}; echo "${c%%:*}"; }

# recog_product_photo FILE I — a 400x600 product photo: a garment of
# product I's colour and shape, a stripe across it, on a light background.
recog_product_photo() {
	local f=$1 i=$2 t c rgb w h x y s sy
	t=$(mktemp -d "$BATS_FILE_TMPDIR/ph.XXXXXX")
	c=${RECOG_COLOURS[$((i % 8))]}
	rgb=${c#*:}
	w=$((200 + 30 * (i % 3))) h=$((380 - 40 * (i % 2)))
	x=$(((400 - w) / 2 + 15 * (i % 4) - 20)) y=$((90 + 10 * (i % 3)))
	s=$(((i / 8) % 2 ? 250 : 10)) sy=$((y + 40 + 70 * (i % 4)))
	vips black "$t/bg.v" 400 600 --bands 3 &&
		vips linear "$t/bg.v" "$t/bg1.v" "1 1 1" "232 230 228" --uchar &&
		vips black "$t/g.v" "$w" "$h" --bands 3 &&
		vips linear "$t/g.v" "$t/g1.v" "1 1 1" "$rgb" --uchar &&
		vips insert "$t/bg1.v" "$t/g1.v" "$t/s1.v" "$x" "$y" &&
		vips black "$t/st.v" "$w" 36 --bands 3 &&
		vips linear "$t/st.v" "$t/st1.v" "1 1 1" "$s $s $s" --uchar &&
		vips insert "$t/s1.v" "$t/st1.v" "$f[Q=92]" "$x" "$sy" || return 1
	rm -rf "$t"
}

# recog_street FILE I — product I's photo as a phone would give it: 80 %
# of the size, a few pixels cut off each side, JPEG quality 70.
recog_street() {
	local t
	t=$(mktemp -d "$BATS_FILE_TMPDIR/st.XXXXXX")
	recog_product_photo "$t/p.jpg" "$2" &&
		vips resize "$t/p.jpg" "$t/r.v" 0.8 &&
		vips crop "$t/r.v" "$1[Q=70]" 10 12 300 452 || return 1
	rm -rf "$t"
}

# pq SQL — run SQL on production; rows as a|b|c lines.
pq() { psql -XAtq -v ON_ERROR_STOP=1 "$PRODUCTION_DB_URL" -c "$1"; }

# recog_row_written ID — the request's recognition_requests row is there
# (unde-recognize writes it just after the done line)
recog_row_written() { [ -n "$(pq "select 1 from recognition_requests where id = '$1'")" ]; }

# recog_catalog N — products Z0…Z(N-1) (brand zara): photos in the catalog
# bucket, staging rows, production products (every other one in stock), and
# their descriptors in production by unde-ximilar-sync's local mode. Also
# creates the private user-media bucket (S3_USER_MEDIA_BUCKET).
recog_catalog() {
	local n=$1 i d url sv=''
	d=$(mktemp -d "$BATS_FILE_TMPDIR/cat.XXXXXX")
	export STAGING_DB_URL PRODUCTION_DB_URL
	STAGING_DB_URL=$(pg_createdb "recog_s_$RANDOM") && unde-db migrate staging --url "$STAGING_DB_URL" >/dev/null || return 1
	PRODUCTION_DB_URL=$(pg_createdb "recog_p_$RANDOM") && unde-db migrate production --url "$PRODUCTION_DB_URL" >/dev/null || return 1
	export S3_USER_MEDIA_BUCKET=unde-user-media
	moto_aws s3api create-bucket --bucket "$S3_USER_MEDIA_BUCKET" >/dev/null || return 1
	for ((i = 0; i < n; i++)); do
		recog_product_photo "$d/$i.jpg" "$i" || return 1
		moto_aws s3 cp --quiet --content-type image/jpeg "$d/$i.jpg" "s3://$S3_BUCKET/originals/zara/Z$i/1.jpg" || return 1
		url="$S3_ENDPOINT/$S3_BUCKET/originals/zara/Z$i/1.jpg"
		psql -XAtq -v ON_ERROR_STOP=1 "$STAGING_DB_URL" -c "insert into raw_products (source, external_id, brand, name,
			category, colour, price, image_urls, image_status, scraped_at) values ('apify_zara', 'Z$i', 'zara',
			'$(recog_colour "$i") jacket Z$i', 'Jackets', '$(recog_colour "$i")', 19990, '[\"$url\"]', 'uploaded', now())" || return 1
		pq "insert into products (source, sku, brand, name, price, category, colour, image_url, image_urls, availability)
			values ('apify_zara', 'Z$i', 'zara', '$(recog_colour "$i") jacket Z$i', 19990, 'Jackets',
			'$(recog_colour "$i")', '$url', '[\"$url\"]', '$( ((i % 2)) && echo '{}' || echo '{"6643": ["M"]}')')" || return 1
	done
	unde-ximilar-sync --pending >/dev/null 2>"$d/sync.err" || { cat "$d/sync.err" >&2; return 1; }
	[ "$(pq 'select count(*) from product_descriptors')" = "$n" ] || { echo "recog_catalog: descriptors missing" >&2; return 1; }
}

# recog_stores — three Zara stores of external ids 6643 (Almaty, KZ, by its
# mall), 7000 (Dubai, AE, by its mall) and 8000 (Astana, KZ, its own city
# and country): a product's availability under one of them says where it is
# in stock.
recog_stores() {
	pq "insert into malls (id, name, city, country, timezone, latitude, longitude) values
		('mega-almaty', 'Mega Almaty', 'Almaty', 'KZ', 'Asia/Almaty', 43.2, 76.9),
		('dubai-mall', 'The Dubai Mall', 'Dubai', 'AE', 'Asia/Dubai', 25.2, 55.3);
	insert into stores (id, mall_id, name, brand, floor, external_store_id, city, country) values
		('zara-mega', 'mega-almaty', 'Zara', 'zara', 1, 6643, null, null),
		('zara-dubai', 'dubai-mall', 'Zara', 'zara', 0, 7000, null, null),
		('zara-astana', null, 'Zara Khan Shatyr', 'zara', null, 8000, 'Astana', 'KZ')" >/dev/null
}

# recog_put FILE KEY — FILE into the user-media bucket; prints its URL.
recog_put() {
	moto_aws s3 cp --quiet --content-type image/jpeg "$1" "s3://$S3_USER_MEDIA_BUCKET/$2" || return 1
	echo "$S3_ENDPOINT/$S3_USER_MEDIA_BUCKET/$2"
}
