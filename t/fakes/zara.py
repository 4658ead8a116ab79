#!/usr/bin/env python3
"""zara — a fake Inditex store-stock API (upstreams.md §8), for unde-availability.

  GET /itxrest/1/physicalstore/STORE/product?ajax=true
        the stock of every product STORE carries (spec §17.2), in the LOMO
        stock service's shape (§8a), one entry per product:
        {"stocks": [{"physicalStoreId": 6643, "productId": "ZAR000001",
                     "sizeStocks": [{"sizeId": 1, "size": "S", "quantity": 2}]}]}
        sparse: products the store does not carry are absent.
  GET /itxrest/.../stock/campaign/C/product/part-number/PN?physicalStoreId=A,B
        §8a as public code uses it: {"stocks": [{"physicalStoreId", "sizeStocks"}]}
        for one product in the listed stores.
  GET /{cc}/{lang}/stores-locator/search?lat=..&lng=..   §8b: [{"id", "latitude",
        "longitude", "addressLines"}] of the configured stores.

A User-Agent must be sent (the app's); without one, or when config "akamai"
is true, the answer is Akamai's 403 text/html "Access Denied" page.

Config (POST /_fake/config):
  stock     {"STORE": {"PRODUCT": {"S": 2, "M": 0}}}  quantities per size
  stores    [{"id": 6643, "latitude": 43.2, "longitude": 76.9, "addressLines": [..]}]
  akamai    true: every stock request gets the 403 page
  user_agent  when set, only this exact User-Agent is served (others: 403)
Plus the failure rules of every fake (429 with Retry-After, 500, hang, …).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

fake = Fake("zara", config={"stock": {}, "stores": [], "akamai": False, "user_agent": None})

DENIED = ("<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n"
          "You don't have permission to access this server.<P>\nReference #18.fake\n</BODY>\n</HTML>\n")
SIZE_IDS = {"XXS": 0, "XS": 1, "S": 2, "M": 3, "L": 4, "XL": 5, "XXL": 6}


def _gate(req):
    ua = req.header("user-agent")
    want = fake.config.get("user_agent")
    if fake.config.get("akamai") or not ua or (want and ua != want):
        raise Abort(403, DENIED, {"Content-Type": "text/html"})


def _sizes(sizes):
    return [{"sizeId": SIZE_IDS.get(name, 100 + i), "size": name, "quantity": int(q)}
            for i, (name, q) in enumerate(sorted(sizes.items(), key=lambda kv: SIZE_IDS.get(kv[0], 99)))]


@fake.route("GET", r"/itxrest/1/physicalstore/([0-9]+)/product")
def store_products(req, store):
    _gate(req)
    products = fake.config["stock"].get(store, {})
    return {"stocks": [{"physicalStoreId": int(store), "productId": pid, "sizeStocks": _sizes(s)}
                       for pid, s in sorted(products.items())]}


@fake.route("GET", r"/itxrest/.*/stock/campaign/([A-Z][0-9]{4})/product/part-number/([0-9]{11})")
def part_number(req, campaign, part):
    _gate(req)
    ids = [x for x in req.args.get("physicalStoreId", "").split(",") if x]
    out = []
    for sid in ids:
        for pid, sizes in fake.config["stock"].get(sid, {}).items():
            if pid.rjust(11, "0")[-11:] == part or pid == part:
                out.append({"physicalStoreId": int(sid), "sizeStocks": _sizes(sizes)})
    return {"stocks": out}


@fake.route("GET", r"/[a-z]{2}/[a-z]{2}/stores-locator/search")
def stores_locator(req):
    _gate(req)
    return fake.config["stores"]


fake.error_body = lambda req, status, msg: ({"Content-Type": "text/html"},
                                            "<HTML><BODY>%s</BODY></HTML>\n" % msg)

if __name__ == "__main__":
    sys.exit(fake.main())
