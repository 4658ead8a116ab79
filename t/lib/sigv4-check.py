#!/usr/bin/env python3
"""sigv4-check — an S3 object server for one test that checks each request's
SigV4 signature as AWS specifies it, with botocore's own signer (the one the
aws CLI and boto3 use) as the reference.

moto 5.2.1 cannot check keys with reserved characters: it rebuilds the path
from werkzeug's decoded-and-requoted URL, which leaves ':', '+', '=', '@'
and the other sub-delimiters bare, so even the aws CLI's requests for such
keys get 403 SignatureDoesNotMatch from it. Here the canonical URI is what
S3 uses: the key URI-encoded once, every byte outside A-Za-z0-9-._~ and '/'
as %XX (botocore.utils.percent_encode(key, safe='/~'), as its S3 client
sends it). A request is accepted only when its path on the wire is exactly
that encoding of the key it names and its signature is the one botocore
computes for it with the same credentials, headers and X-Amz-Date.

  sigv4-check.py --port P --port-file F --bucket B --access-key K --secret-key S --region R

The port file is written once it listens.

PUT stores, GET answers, HEAD gives the size, DELETE removes; a bad
signature or path is 403 with the expected canonical request in the body.
Every request is logged as one JSON line on stdout: method, raw path, the
key, the path expected, ok.
"""
import argparse
import http.server
import json
import os
import sys
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
for a in ("port-file", "bucket", "access-key", "secret-key", "region"):
    ap.add_argument("--" + a, required=True)
args = ap.parse_args()
objects = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        raw = self.path.split("?", 1)[0]
        prefix = "/" + args.bucket + "/"
        key = urllib.parse.unquote(raw[len(prefix):]) if raw.startswith(prefix) else None
        want = prefix + percent_encode(key, safe="/~") if key is not None else None
        auth = self.headers.get("Authorization", "")
        signed = auth.partition("SignedHeaders=")[2].partition(",")[0].split(";")
        req = AWSRequest(method=self.command, url="http://" + self.headers.get("Host", "") + (want or raw),
                         data=body, headers={h: self.headers[h] for h in signed if h in self.headers})
        req.context["timestamp"] = self.headers.get("X-Amz-Date", "")
        signer = S3SigV4Auth(Credentials(args.access_key, args.secret_key), "s3", args.region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        ok = want is not None and raw == want and auth.partition("Signature=")[2] == expected
        print(json.dumps({"method": self.command, "raw_path": raw, "key": key, "want_path": want, "ok": ok}),
              flush=True)
        if not ok:
            return self.answer(403, ("<Error><Code>SignatureDoesNotMatch</Code><Message>canonical request:\n"
                                     + canonical + "</Message></Error>").encode(),
                               [("Content-Type", "application/xml")])
        if self.command == "PUT":
            objects[key] = (body, self.headers.get("Content-Type", "binary/octet-stream"))
            return self.answer(200, headers=[("ETag", '"%x"' % (hash(body) & 0xffffffff))])
        if self.command == "DELETE":
            objects.pop(key, None)
            return self.answer(204)
        if key not in objects:
            return self.answer(404, b"<Error><Code>NoSuchKey</Code></Error>", [("Content-Type", "application/xml")])
        data, ctype = objects[key]
        if self.command == "HEAD":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", ctype)
            return self.end_headers()
        return self.answer(200, data, [("Content-Type", ctype)])

    do_PUT = do_GET = do_HEAD = do_DELETE = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
