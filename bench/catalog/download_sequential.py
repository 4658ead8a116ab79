#!/usr/bin/python3
"""The spec's own photo download loop (§3 "Процесс скачивания"), as the
baseline unde-download is measured against: requests, one photo after the
other, each saved to a local file, uploaded with boto3 and removed, one
UPDATE per product.

Talks to the same staging database, fake CDN and S3 server (moto, with
signatures checked) as unde-download in the same benchmark run.

usage: download_sequential.py DB_URL DATA_DIR
(S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET from the environment)
"""
import json
import os
import sys

import boto3
import psycopg2
import requests


def main():
    db_url, data_dir = sys.argv[1], sys.argv[2]
    endpoint, bucket = os.environ["S3_ENDPOINT"], os.environ["S3_BUCKET"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                      aws_secret_access_key=os.environ["S3_SECRET_KEY"])
    db = psycopg2.connect(db_url)
    cur = db.cursor()
    cur.execute("""
        SELECT id, external_id, brand, original_image_urls
        FROM raw_products
        WHERE image_status = 'pending'
        LIMIT 200
    """)
    products = cur.fetchall()
    done = 0
    for (pid, external_id, brand, original_image_urls) in products:
        try:
            uploaded_urls = []
            for i, url in enumerate(original_image_urls[:5]):
                response = requests.get(url, timeout=30)
                local_path = f"{data_dir}/{external_id}_{i}.jpg"
                with open(local_path, "wb") as f:  # save(response.content, local_path)
                    f.write(response.content)
                key = f"originals/{brand}/{external_id}/{i+1}.jpg"
                s3.upload_file(local_path, bucket, key)
                uploaded_urls.append(f"{endpoint}/{bucket}/{key}")
                os.remove(local_path)
            cur.execute("""
                UPDATE raw_products
                SET image_urls = %s, image_status = 'uploaded'
                WHERE id = %s
            """, (json.dumps(uploaded_urls), pid))
            db.commit()
            done += 1
        except Exception as e:
            db.rollback()
            cur.execute("""
                UPDATE raw_products
                SET image_status = 'error', error_message = %s
                WHERE id = %s
            """, (str(e), pid))
            db.commit()
    print(done)


if __name__ == "__main__":
    main()
