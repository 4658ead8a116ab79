#!/usr/bin/env python3
"""echo — a generic fake for the library's own tests (HTTP client, retries).

  ANY  /echo          200 {"method","path","query","args","headers","body","body_encoding"}
  GET  /status/NNN    answers status NNN (200-599) with {"status":NNN};
                      ?retry_after=V adds a Retry-After header
  GET  /bytes/N       N bytes of application/octet-stream (byte i is i % 256)
  GET  /json          {"ok":true}

plus the control API every fake has (/_fake/...; see README.md).
Run: python3 t/fakes/echo.py --port-file FILE
"""

import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

fake = Fake("echo")


@fake.route("*", "/echo")
def echo(req):
    text = req.text
    return 200, {}, {
        "method": req.method, "path": req.path, "query": req.query, "args": req.args,
        "headers": req.headers,
        "body": text if text is not None else base64.b64encode(req.body).decode(),
        "body_encoding": "utf-8" if text is not None else "base64",
    }


@fake.route("GET", r"/status/([0-9]{3})")
def status(req, code):
    code = int(code)
    if not 200 <= code <= 599:
        raise Abort(400, {"error": {"code": 400, "message": "status must be 200-599"}})
    headers = {}
    if "retry_after" in req.args:
        headers["Retry-After"] = req.args["retry_after"]
    return code, headers, {"status": code}


@fake.route("GET", r"/bytes/([0-9]{1,12})")
def nbytes(req, n):
    n = int(n)

    def gen():  # streamed with a Content-Length, so N may be large
        block = bytes(range(256)) * 256
        left = n
        while left > 0:
            piece = block[:left]
            left -= len(piece)
            yield piece
    return 200, {"Content-Type": "application/octet-stream", "Content-Length": str(n)}, gen()


@fake.route("GET", "/json")
def ok_json(req):
    return {"ok": True}


if __name__ == "__main__":
    sys.exit(fake.main())
