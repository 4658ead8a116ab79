#!/usr/bin/env python3
"""apify — a fake Apify API v2 (upstreams.md §1), for unde-apify.

  POST /v2/acts/ACTOR/runs               start a run: 201 {"data": Run} + Location
  GET  /v2/actor-runs/RUN                the run; RUNNING for "polls" calls, then
                                         "final_status" (default SUCCEEDED)
  POST /v2/actor-runs/RUN/abort          status ABORTED
  GET  /v2/datasets/DS/items             offset/limit paging, X-Apify-Pagination-*
                                         headers, raw JSON array (format=json)

Auth: "Authorization: Bearer TOKEN" or ?token=TOKEN; wrong or missing → 401
{"error":{"type":"token-not-provided"|"user-or-token-not-found",...}}.

Config (POST /_fake/config):
  token          the accepted token (default "test-token")
  datasets       {"ACTOR": [items...]} with ACTOR as in the path (user~name)
  generate       {"count": N, "cdn": URL, "photos": 3, "spec": "jpeg-600x800"}:
                 items for actors not in datasets, brand taken from the actor
                 name; photo URLs point at CDN/p/SPEC/BRAND/ID/N.jpg
  polls          GETs of a run answered RUNNING before it ends (default 1)
  final_status   how runs end (default SUCCEEDED)
  unknown_actors actors answered 404 record-not-found
Plus the failure rules of every fake (429 with Retry-After, 500, hang, …),
whose error bodies take Apify's {"error":{"type","message"}} shape.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

fake = Fake("apify", config={"token": "test-token", "datasets": {}, "generate": None,
                             "polls": 1, "final_status": "SUCCEEDED", "unknown_actors": []})

TYPES = {400: "invalid-request", 401: "token-not-provided", 404: "record-not-found",
         429: "rate-limit-exceeded", 500: "internal-server-error", 503: "server-overloaded"}


def _apify_error(req, status, message):
    return {}, {"error": {"type": TYPES.get(status, "error"), "message": message}}


fake.error_body = _apify_error


def _auth(req):
    token = req.bearer() or req.args.get("token")
    if not token:
        raise Abort(401, {"error": {"type": "token-not-provided",
                                    "message": "Authentication token was not provided"}})
    if token != req.fake.config.get("token"):
        raise Abort(401, {"error": {"type": "user-or-token-not-found",
                                    "message": "User was not found or authentication token is not valid"}})


def _generated(actor):
    gen = fake.config.get("generate")
    if not gen:
        return []
    brand = actor.split("~")[-1].split("/")[-1]
    cdn = gen.get("cdn", "http://127.0.0.1:1")
    spec = gen.get("spec", "jpeg-600x800")
    items = []
    for i in range(1, int(gen.get("count", 10)) + 1):
        pid = "%s%06d" % (brand[:3].upper(), i)
        items.append({
            "id": pid, "name": "%s item %d" % (brand.capitalize(), i), "brand": brand.capitalize(),
            "description": "A generated product", "price": "%d ₸" % (9990 + i * 10),
            "currency": "KZT", "category": ["Women", "Dresses"], "color": "Black",
            "sizes": ["XS", "S", "M", "L"], "composition": "100% cotton",
            "url": "https://www.%s.com/kz/en/p%s.html" % (brand, pid),
            "images": ["%s/p/%s/%s/%s/%d.jpg" % (cdn, spec, brand, pid, n)
                       for n in range(1, int(gen.get("photos", 3)) + 1)],
        })
    return items


def _run_view(run):
    return {k: v for k, v in run.items() if k != "_polls"}


@fake.route("POST", r"/v2/acts/([^/]+)/runs")
def start_run(req, actor):
    _auth(req)
    if actor in fake.config.get("unknown_actors", []):
        raise Abort(404, {"error": {"type": "record-not-found", "message": "Actor was not found"}})
    data = req.json() if req.body else {}
    with fake.lock:
        n = fake.state.get("n", 0) + 1
        fake.state["n"] = n
        run_id, ds_id = "run%04dAbC" % n, "ds%04dXyZ" % n
        items = fake.config.get("datasets", {}).get(actor)
        if items is None:
            items = _generated(actor)
        fake.state.setdefault("datasets", {})[ds_id] = items
        run = {"id": run_id, "actId": actor, "userId": "fakeUser", "status": "RUNNING",
               "startedAt": "2025-01-01T10:00:00.000Z", "finishedAt": None,
               "defaultDatasetId": ds_id, "defaultKeyValueStoreId": "kv%04d" % n,
               "buildId": "b1", "exitCode": None, "input": data,
               "options": {"build": "latest", "timeoutSecs": 3600, "memoryMbytes": 1024},
               "_polls": int(fake.config.get("polls", 1))}
        if run["_polls"] <= 0:
            run["status"] = fake.config.get("final_status", "SUCCEEDED")
        fake.state.setdefault("runs", {})[run_id] = run
        view = _run_view(run)
    return 201, {"Location": "/v2/actor-runs/" + run_id}, {"data": view}


@fake.route("GET", r"/v2/actor-runs/([^/]+)")
def get_run(req, run_id):
    _auth(req)
    with fake.lock:
        run = fake.state.get("runs", {}).get(run_id)
        if not run:
            raise Abort(404, {"error": {"type": "record-not-found", "message": "Actor run was not found"}})
        if run["status"] == "RUNNING":
            if run["_polls"] > 0:
                run["_polls"] -= 1
            else:
                run["status"] = fake.config.get("final_status", "SUCCEEDED")
                run["finishedAt"] = "2025-01-01T10:05:00.000Z"
                run["exitCode"] = 0 if run["status"] == "SUCCEEDED" else 1
        return 200, {}, {"data": _run_view(run)}


@fake.route("POST", r"/v2/actor-runs/([^/]+)/abort")
def abort_run(req, run_id):
    _auth(req)
    with fake.lock:
        run = fake.state.get("runs", {}).get(run_id)
        if not run:
            raise Abort(404, {"error": {"type": "record-not-found", "message": "Actor run was not found"}})
        run["status"] = "ABORTED"
        return 200, {}, {"data": _run_view(run)}


@fake.route("GET", r"/v2/datasets/([^/]+)/items")
def items(req, ds_id):
    _auth(req)
    if req.args.get("format", "json") != "json":
        raise Abort(400, {"error": {"type": "invalid-value", "message": "only format=json is faked"}})
    with fake.lock:
        data = fake.state.get("datasets", {}).get(ds_id)
    if data is None:
        raise Abort(404, {"error": {"type": "record-not-found", "message": "Dataset was not found"}})
    try:
        offset = int(req.args.get("offset", "0"))
        limit = int(req.args.get("limit", "250000"))
    except ValueError:
        raise Abort(400, {"error": {"type": "invalid-value", "message": "offset/limit must be integers"}})
    page = data[offset:offset + limit]
    headers = {"X-Apify-Pagination-Offset": str(offset), "X-Apify-Pagination-Limit": str(limit),
               "X-Apify-Pagination-Count": str(len(page)), "X-Apify-Pagination-Total": str(len(data))}
    return 200, headers, page


if __name__ == "__main__":
    sys.exit(fake.main())
