#!/usr/bin/env python3
"""intelistyle — fake Intelistyle outfit API: POST /v3/outfits.

shared/upstreams.md has no Intelistyle section; the contract is ours and
documented in man/unde-llm.1 (INTELISTYLE): Bearer auth; the body
{"query", "occasion", "gender", "items": [{sku, brand, name, category,
colour}], "max_outfits"}; the answer {"outfits": [{"id", "items": [{"sku",
"role"}], "reason"}]}; errors {"error": {"code", "message"}} with 400, 401,
429, 500.

By default the outfits are made of the items sent: the first outfit holds
the first three, a second (when more were sent) the rest, each with a
reason naming the occasion. Like every fake it fails on demand through
/_fake/fail (429, 500, hang, slow, malformed, close).

Config knobs (POST /_fake/config):
  outfits     answer exactly this list of outfits instead
  extra_sku   add an item with this SKU to every outfit (a product
              production does not have: the client must drop it)
  key         the accepted API key (default "test-key")
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

OCCASIONS = {"wedding", "office", "date", "party", "dinner", "sport", "vacation", "casual"}
ROLES = ("main", "top", "bottom", "shoes", "accessory")

fake = Fake("intelistyle", config={"outfits": None, "extra_sku": None, "key": "test-key"})


def bad(msg):
    raise Abort(400, {"error": {"code": "invalid_request", "message": msg}})


@fake.route("POST", r"/v3/outfits")
def outfits(req):
    if req.bearer() != fake.config["key"]:
        raise Abort(401, {"error": {"code": "unauthorized", "message": "invalid api key"}})
    body = req.json()
    if not isinstance(body, dict):
        bad("body must be an object")
    if not isinstance(body.get("query"), str) or not body["query"]:
        bad("query must be a non-empty string")
    if body.get("occasion") is not None and body["occasion"] not in OCCASIONS:
        bad(f"occasion must be one of {sorted(OCCASIONS)} or null")
    if body.get("gender") not in (None, "female", "male"):
        bad("gender must be female, male or null")
    items = body.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("sku"), str) for i in items):
        bad("items must be a list of objects with a sku")
    n = body.get("max_outfits", 3)
    if not isinstance(n, int) or not 1 <= n <= 10:
        bad("max_outfits must be an integer 1-10")
    with fake.lock:
        fake.state["calls"] = fake.state.get("calls", 0) + 1
    if fake.config["outfits"] is not None:
        return {"outfits": fake.config["outfits"][:n]}
    occ = body.get("occasion") or "every day"
    groups = [items[:3], items[3:6]]
    res = []
    for k, g in enumerate(x for x in groups if x):
        its = [{"sku": i["sku"], "role": ROLES[j % len(ROLES)]} for j, i in enumerate(g)]
        if fake.config["extra_sku"]:
            its.append({"sku": fake.config["extra_sku"], "role": "accessory"})
        res.append({"id": f"o{k + 1}", "items": its,
                    "reason": f"Balanced colours and one silhouette, right for {occ}"})
    return {"outfits": res[:n]}


fake.error_body = lambda req, status, msg: ({}, {"error": {"code": str(status), "message": msg}})

if __name__ == "__main__":
    sys.exit(fake.main())
