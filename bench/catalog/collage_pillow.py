#!/usr/bin/python3
"""The spec's own collage procedure (§5 "Процесс обработки"), as the
baseline unde-collage is measured against: Pillow, one product at a time.

    process_product(product_id):
        product = SELECT ... WHERE id = ? AND image_status = 'uploaded'
        images = [Image.open(s3.download(url)) for url in product.image_urls]
        total_width = sum(w); max_height = max(h)
        collage = Image.new('RGB', (total_width, max_height), 'white')
        paste each at x; x += width
        s3.upload_file(collage, S3_BUCKET, f"collages/{brand}/{external_id}.jpg")
        UPDATE raw_products SET collage_url = ?, image_status = 'collage_ready'

Storage is the same file:// object store unde-collage uses in the benchmark
(objects are files under STORE/<key>), so both read and write the same way.
The collage is saved at quality 85 (COLLAGE_QUALITY), the spec's only
setting for it. With --resize, Pillow does unde-collage's job: the same
height rule and the same 2048 px wide output (COLLAGE_MAX_WIDTH), with
Pillow's draft mode (JPEG shrink-on-load, the same DCT scale unde-collage
picks) and a Lanczos resize. That is the comparison reported first.

usage: collage_pillow.py DB_URL STORE_DIR [--resize]
"""
import io
import os
import sys

import psycopg2
from PIL import Image

MAX_WIDTH = 2048


def key_of(url, store):
    prefix = "file://" + store + "/"
    assert url.startswith(prefix), url
    return url[len(prefix):]


def process_product(db, store, product_id, resize):
    cur = db.cursor()
    cur.execute("SELECT brand, external_id, image_urls FROM raw_products"
                " WHERE id = %s AND image_status = 'uploaded'", (product_id,))
    brand, external_id, image_urls = cur.fetchone()
    # "s3.download(url)": the object's bytes
    images = []
    for url in image_urls:
        with open(os.path.join(store, key_of(url, store)), "rb") as f:
            images.append(Image.open(io.BytesIO(f.read())))
    if resize:
        # the same output as unde-collage: the median height (the upper
        # middle one), higher photos lowered to it, lower ones kept and
        # centred on white, all lowered together to at most MAX_WIDTH
        hs = sorted(img.height for img in images)
        h = hs[len(hs) // 2]
        ph = [min(img.height, h) for img in images]
        pw = [img.width * p / img.height for img, p in zip(images, ph)]
        f = min(1.0, MAX_WIDTH / sum(pw))
        full_h = max(1, int(h * f))
        out = []
        for img, w0, h0 in zip(images, pw, ph):
            w = max(1, round(w0 * f))
            hh = full_h if h0 >= h else max(1, min(full_h, round(h0 * f)))
            img.draft("RGB", (w, hh))
            out.append(img.convert("RGB").resize((w, hh), Image.LANCZOS))
        images = out
        total_width = sum(img.width for img in images)
        collage = Image.new("RGB", (total_width, full_h), "white")
        x = 0
        for img in images:
            collage.paste(img, (x, (full_h - img.height) // 2))
            x += img.width
    else:
        total_width = sum(img.width for img in images)
        max_height = max(img.height for img in images)
        collage = Image.new("RGB", (total_width, max_height), "white")
        x = 0
        for img in images:
            collage.paste(img, (x, 0))
            x += img.width
    key = "collages-pillow/%s/%s.jpg" % (brand, external_id)
    buf = io.BytesIO()
    collage.save(buf, "JPEG", quality=85)
    path = os.path.join(store, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:  # "s3.upload_file"
        f.write(buf.getvalue())
    cur.execute("UPDATE raw_products SET collage_url = %s, image_status = 'collage_ready'"
                " WHERE id = %s", ("file://" + path, product_id))
    db.commit()


def main():
    db_url, store = sys.argv[1], sys.argv[2].rstrip("/")
    resize = "--resize" in sys.argv[3:]
    db = psycopg2.connect(db_url)
    cur = db.cursor()
    cur.execute("SELECT id FROM raw_products WHERE image_status = 'uploaded' ORDER BY id LIMIT 100")
    ids = [r[0] for r in cur.fetchall()]
    for pid in ids:
        process_product(db, store, pid, resize)
    print(len(ids))


if __name__ == "__main__":
    main()
