#!/usr/bin/env python3
"""echo — a generic fake for the library's own tests (HTTP client, retries).

  ANY  /echo          200 {"method","path","query","args","headers","body","body_encoding"}
  GET  /status/NNN    answers status NNN (200-599) with {"status":NNN};
                      ?retry_after=V adds a Retry-After header
  GET  /bytes/N       N bytes of application/octet-stream (byte i is i % 256)
  GET  /json          {"ok":true}
  GET  /sse           text/event-stream: ?n=N events ("data: {"n":i}"), ?gap_ms=M
                      apart, each written and flushed on its own
  POST /reply         answers config "reply_status" (default 200) with the text
                      of config "reply_body" (default: the request body), as
                      application/x-ndjson: a stand-in for a sibling service

plus the control API every fake has (/_fake/...; see README.md).
Run: python3 t/fakes/echo.py --port-file FILE
"""

import base64
import os
import sys
import time

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


@fake.route("GET", "/sse")
def sse(req):
    n = int(req.args.get("n", "3"))
    gap = int(req.args.get("gap_ms", "0")) / 1000.0

    def gen():
        yield ": a comment line, ignored\n"
        for i in range(1, n + 1):
            if i > 1 and gap:
                time.sleep(gap)
            # CRLF on even events, LF on odd: both end a line
            end = "\r\n" if i % 2 == 0 else "\n"
            yield "event: tick" + end + 'data: {"n":%d,' % i + end + 'data: "sent":%.3f}' % time.time() + end + end
    return 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, gen()


@fake.route("POST", "/reply")
def reply(req):
    body = fake.config.get("reply_body")
    text = body if body is not None else (req.text or "")
    return int(fake.config.get("reply_status", 200)), {"Content-Type": "application/x-ndjson"}, text


if __name__ == "__main__":
    sys.exit(fake.main())
