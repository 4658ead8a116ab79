#!/usr/bin/env python3
"""ximilar — a fake Ximilar API (upstreams.md §2): fashion detection and
tagging, and visual-search collections.

  POST /tagging/fashion/v2/detect|detect_tags|detect_tags_all|tags|meta
        {"records": [{"_url"|"_base64": ...}]} → each record back with
        _status, _width/_height and _objects (config "objects"; /detect
        without _tags; /tags: the whole image as one object).
  POST /{SERVICE}/v2/insert|update|delete|get|visualKNN|random|allIDs|ping
        SERVICE: similarity/photos, similarity/products, similarity/fashion,
        similarity/custom, image_matching, … (any similarity/NAME). Needs the
        header collection-id. The collection is a list, so a client that
        inserts an _id twice is seen holding it twice.
        insert  records need _id and _url|_base64 (else that record's
                _status 400); metadata = the other keys
        update  merges metadata into each _id held (404 per record if none)
        delete  removes every record with that _id (404 per record if none)
        get     the records with those _ids
        visualKNN {"query_record": {_id|_url|_base64}, "k", "fields_to_return",
                "filter": {field: value | {"$in": [...]}}} → answer_records,
                answer_distances (and _distance in each record), answer_count;
                distance 0 for the same _url/_id, else a stable value in (0, 1)
                from the two URLs (or config "distances": {"_id": d})
  GET  /fake/collection/CID     the collection's records, in order (for tests)

Auth: "Authorization: Token TOKEN" (or JWT TOKEN), TOKEN = config "token"
(default "test-token"); else 401 {"detail": "Invalid token."}. Every JSON
answer carries status {"code": 200, "text": "OK", "request_id"} and
statistics. Max 10 records per request: more → 400.

Config (POST /_fake/config):
  token          the accepted token
  objects        the _objects detect/tags answer (default: one "Upper" top)
  record_errors  {"URL-or-ID-or-SHA256": {"code": 400, "text": "..."}}
                 per-record failures (records[i]._status) of insert/tags/
                 detect; a _base64 record is named by the SHA-256 (hex) of
                 its decoded bytes (`sha256sum photo.jpg`)
  distances      {"_id": distance} fixed visualKNN distances
Plus the failure rules of every fake: 429 with Retry-After, 500, slow, hang,
malformed; their bodies take Ximilar's {"detail": "..."} shape.
"""

import base64
import binascii
import hashlib
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

DEFAULT_OBJECTS = [{
    "name": "Upper", "id": "obj-1", "bound_box": [130, 210, 700, 980], "prob": 0.93, "area": 0.38,
    "Top Category": "Clothing", "Category": "Clothing/Upper",
    "_tags": {"Category": [{"name": "Clothing/Upper", "prob": 0.97, "id": "t1"}],
              "Subcategory": [{"name": "shirts", "prob": 0.81, "id": "t2"}],
              "Color": [{"name": "blue", "prob": 0.88, "id": "t3"}]},
    "_tags_simple": ["blue", "shirts"], "_tags_map": {"Color": "blue", "Subcategory": "shirts"},
}]

fake = Fake("ximilar", config={"token": "test-token", "objects": DEFAULT_OBJECTS,
                               "record_errors": {}, "distances": {}})
MAX_RECORDS = 10


def _status(code=200, text="OK"):
    return {"code": code, "text": text, "request_id": str(uuid.uuid4())}


def _answer(extra):
    out = {"status": _status(), "statistics": {"processing time": 0.01}}
    out.update(extra)
    return out


def _auth(req):
    auth = req.header("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme not in ("Token", "JWT") or token != fake.config["token"]:
        raise Abort(401, {"detail": "Invalid token."})


def _records(req):
    body = req.json()
    recs = body.get("records") if isinstance(body, dict) else None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise Abort(400, {"detail": "records must be a list of objects",
                          "status": _status(400, "records must be a list of objects")})
    if len(recs) > MAX_RECORDS:
        raise Abort(400, {"detail": "at most %d records per request" % MAX_RECORDS,
                          "status": _status(400, "too many records")})
    return body, recs


def _b64_sha256(rec):
    data = rec.get("_base64")
    if not isinstance(data, str):
        return None
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        return hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest()
    except (binascii.Error, ValueError):
        return None


def _record_error(rec):
    errs = fake.config.get("record_errors") or {}
    if not errs:
        return None
    for key in (rec.get("_id"), rec.get("_url"), _b64_sha256(rec)):
        if key is not None and key in errs:
            e = errs[key]
            return {"code": int(e.get("code", 400)), "text": e.get("text", "error"),
                    "request_id": str(uuid.uuid4())}
    return None


@fake.route("POST", r"/tagging/fashion/v2/(detect|detect_tags|detect_tags_all|tags|meta)")
def tagging(req, method):
    _auth(req)
    _, recs = _records(req)
    out = []
    for rec in recs:
        r = dict(rec)
        r.pop("_base64", None)
        err = _record_error(rec)
        if err or not (rec.get("_url") or rec.get("_base64")):
            r["_status"] = err or _status(400, "record needs _url or _base64")
            out.append(r)
            continue
        objs = [dict(o) for o in fake.config["objects"]]
        if method == "detect":
            for o in objs:
                o.pop("_tags", None), o.pop("_tags_simple", None), o.pop("_tags_map", None)
        if method == "tags":
            r["_tags"] = objs[0].get("_tags", {}) if objs else {}
            r["_tags_simple"] = objs[0].get("_tags_simple", []) if objs else []
        else:
            r["_objects"] = objs if method != "detect_tags" else objs[:1]
        r.update({"_status": _status(), "_width": 1000, "_height": 1500})
        out.append(r)
    return _answer({"records": out})


def _collection(req):
    cid = req.header("collection-id") or req.header("collection")
    if not cid:
        raise Abort(400, {"detail": "collection-id header missing",
                          "status": _status(400, "collection-id header missing")})
    with fake.lock:
        return fake.state.setdefault("collections", {}).setdefault(cid, [])


def _fields(rec, fields):
    if not fields:
        fields = ["_id", "_url"]
    return {k: rec[k] for k in fields if k in rec}


def _matches(rec, flt):
    for k, v in (flt or {}).items():
        if isinstance(v, dict) and "$in" in v:
            if rec.get(k) not in v["$in"]:
                return False
        elif rec.get(k) != v:
            return False
    return True


def _distance(query, rec):
    fixed = fake.config.get("distances") or {}
    if rec.get("_id") in fixed:
        return float(fixed[rec["_id"]])
    if query.get("_id") is not None and query.get("_id") == rec.get("_id"):
        return 0.0
    if query.get("_url") is not None and query.get("_url") == rec.get("_url"):
        return 0.0
    key = (str(query.get("_url") or query.get("_id") or query.get("_base64", "")[:64]) + "|" +
           str(rec.get("_url") or rec.get("_id")))
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return round(0.05 + 0.9 * h / 0xFFFFFFFF, 4)


SERVICE = r"/((?:similarity/[a-z-]+|image_matching|photo/search)/v2)"


@fake.route("POST", SERVICE + r"/(insert|update|delete|get)")
def records_method(req, service, method):
    _auth(req)
    coll = _collection(req)
    body, recs = _records(req)
    out = []
    with fake.lock:
        for rec in recs:
            r = {k: v for k, v in rec.items() if k != "_base64"}
            rid = rec.get("_id")
            err = _record_error(rec) if method == "insert" else None
            held = [x for x in coll if rid is not None and x.get("_id") == rid]
            if err:
                r["_status"] = err
            elif method == "insert":
                if rid is None or not (rec.get("_url") or rec.get("_base64")):
                    r["_status"] = _status(400, "record needs _id and _url or _base64")
                else:
                    coll.append(r.copy())
                    r["_status"] = _status()
            elif not held:
                r["_status"] = _status(404, "record %s not found" % rid)
            elif method == "update":
                for x in held:
                    x.update({k: v for k, v in rec.items() if k not in ("_id", "_base64")})
                r["_status"] = _status()
            elif method == "delete":
                coll[:] = [x for x in coll if x.get("_id") != rid]
                r["_status"] = _status()
            else:  # get
                r = _fields(held[0], body.get("fields_to_return"))
                r["_status"] = _status()
            out.append(r)
    return _answer({"records": out})


@fake.route("POST", SERVICE + r"/visualKNN")
def visual_knn(req, service):
    _auth(req)
    coll = _collection(req)
    body = req.json()
    query = body.get("query_record") if isinstance(body, dict) else None
    if not isinstance(query, dict) or not (query.get("_id") or query.get("_url") or query.get("_base64")):
        raise Abort(400, {"detail": "query_record needs _id, _url or _base64",
                          "status": _status(400, "query_record needs _id, _url or _base64")})
    k = int(body.get("k", 5))
    with fake.lock:
        cands = [x for x in coll if _matches(x, body.get("filter"))]
    ranked = sorted(((_distance(query, x), i, x) for i, x in enumerate(cands)))[:k]
    answers = []
    for d, _, x in ranked:
        a = _fields(x, body.get("fields_to_return"))
        a["_distance"] = d
        answers.append(a)
    return _answer({"answer_records": answers, "answer_distances": [d for d, _, _ in ranked],
                    "answer_count": len(answers)})


@fake.route("POST", SERVICE + r"/(random|allIDs|ping)")
def misc(req, service, method):
    _auth(req)
    if method == "ping":
        return _answer({})
    coll = _collection(req)
    body = req.json() if req.body else {}
    with fake.lock:
        recs = [x for x in coll if _matches(x, (body or {}).get("filter"))]
    if method == "random":
        recs = recs[:int((body or {}).get("count", 10))]
        return _answer({"answer_records": [_fields(x, (body or {}).get("fields_to_return")) for x in recs]})
    return _answer({"ids": [x.get("_id") for x in recs]})


@fake.route("GET", r"/fake/collection/([^/]+)")
def show_collection(req, cid):
    with fake.lock:
        return list(fake.state.get("collections", {}).get(cid, []))


fake.error_body = lambda req, status, msg: ({}, {"detail": msg, "status": _status(status, msg)})

if __name__ == "__main__":
    sys.exit(fake.main())
