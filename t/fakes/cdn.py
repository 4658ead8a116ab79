#!/usr/bin/env python3
"""cdn — a fake brand photo CDN (the servers unde-download fetches from).

Images are made on first request with the vips command line (libvips-tools)
and kept in memory, so the tests need no binary fixtures:

  GET /p/SPEC[/anything]      an image; SPEC is FORMAT-WxH[-MOD...]:
                              FORMAT jpeg | png | webp
                              MOD    alpha  (top half fully transparent)
                                     cmyk   (JPEG in CMYK, no ICC profile)
                                     grey   (one band)
                                     exif6  (JPEG stored WxH with EXIF
                                             Orientation 6: shown HxW)
                                     thumb  (JPEG with an EXIF block holding a
                                             160x120 JPEG thumbnail, which
                                             has its own SOI ... EOI)
                                     trailer (8 KiB of other data after the
                                             JPEG's EOI, as phones append)
                                     vN     (another variant, other bytes)
                              Every image's left half is the "mark" colour
                              sRGB (200, 30, 30); the right half a gradient.
                              Anything after SPEC only makes URLs unique.
  GET /blocked/...            200 text/html "Access Denied" page (a bot wall)
  GET /truncated/SPEC/...     the first 60 % of the image, Content-Length
                              saying so: HTTP is fine, the image is cut
  GET /cut/SPEC/...           Content-Length of the whole image, 60 % sent,
                              connection closed
  GET /cutmain/N/SPEC/...     a JPEG cut N bytes into its main image's
                              entropy-coded data (after the first SOS
                              segment of the file's own markers)
  GET /cuteoi/N/SPEC/...      the same cut, with an EOI marker put after it
                              (the file looks whole; its scan is short)
  GET /redirect/N/PATH        302 to /redirect/N-1/PATH ... /PATH (N hops)
  GET /redirect-file/...      302 to file:///etc/passwd (not http: refused)
  GET /redirect-host/HOST/PATH  302 to http://HOST:PORT/PATH, PORT this
                              request's own (another address of the same
                              fake when it listens on 0.0.0.0: --host)
  GET /empty/...              200 with an empty image/jpeg body
  GET /missing/...            404
  GET /slow/MS/SPEC/...       the image after MS milliseconds

Config (POST /_fake/config): {"latency_ms": N} delays every /p/ answer
(the benchmark's 50 ms). 429 with Retry-After, 500s, hangs: the failure
rules every fake has, e.g. {"mode":"429","retry_after":"1","path":"/p/"}.
"""

import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402
from fakelib import Abort, Fake  # noqa: E402

fake = Fake("cdn", config={"latency_ms": 0})
_cache = {}
_lock = threading.Lock()
VIPS = os.environ.get("VIPS", "vips")
MARK = (200, 30, 30)
SPEC_RE = re.compile(r"(jpeg|png|webp)-([0-9]{1,5})x([0-9]{1,5})((?:-[a-z0-9]+)*)")
TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def _exif_orientation(jpeg, orientation):
    """The JPEG with an APP1 Exif segment holding only Orientation."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + \
        struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + app1 + jpeg[2:]


def _exif_thumbnail(jpeg, thumb):
    """The JPEG with an APP1 Exif segment whose IFD1 holds a JPEG thumbnail
    (JPEGInterchangeFormat / ...Length), as cameras and phones write it."""
    # IFD0: no entries, next IFD at 14; IFD1: two LONG entries, then the thumbnail
    ifd1 = 14
    data_at = ifd1 + 2 + 2 * 12 + 4
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HI", 0, ifd1) + \
        struct.pack(">H", 2) + \
        struct.pack(">HHII", 0x0201, 4, 1, data_at) + \
        struct.pack(">HHII", 0x0202, 4, 1, len(thumb)) + struct.pack(">I", 0) + thumb
    body = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + app1 + jpeg[2:]


def _main_scan_start(jpeg):
    """The offset of the entropy-coded data after the first SOS of the
    file's own marker segments (an APPn's content is skipped)."""
    i = 2
    while i + 4 <= len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        i += 2 + length
        if marker == 0xDA:
            return i
    raise Abort(500, "no SOS\n")


def _run(*args):
    subprocess.run([VIPS] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_image(spec):
    m = SPEC_RE.fullmatch(spec)
    if not m:
        raise Abort(404, "no such image spec: %s\n" % spec, {"Content-Type": "text/plain"})
    fmt, w, h, mods = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    mods = set(x for x in mods.split("-") if x)
    if not (1 <= w <= 8000 and 1 <= h <= 8000):
        raise Abort(404, "size out of range\n")
    variant = 0
    for x in list(mods):
        if re.fullmatch(r"v[0-9]+", x):
            variant = int(x[1:])
            mods.discard(x)
    unknown = mods - {"alpha", "cmyk", "grey", "exif6", "thumb", "trailer"}
    if unknown:
        raise Abort(404, "unknown modifier %s\n" % sorted(unknown))
    alpha = "alpha" in mods
    bands = 4 if alpha else 3
    half = w // 2
    row = bytearray()
    for x in range(w):
        px = MARK if x < half else ((x * 7 + variant * 40) % 256, (x * 3 + 90) % 256, (150 + variant * 13) % 256)
        row += bytes(px)
        if alpha:
            row.append(255)
    rows = bytes(row) * h
    if alpha:  # top half transparent (alpha 0) over black: flattening must give white
        clear = bytearray(row)
        for x in range(w):
            clear[x * 4:x * 4 + 4] = b"\x00\x00\x00\x00"
        rows = bytes(clear) * (h // 2) + bytes(row) * (h - h // 2)
    with tempfile.TemporaryDirectory(prefix="unde-cdn.") as d:
        raw, v, out = os.path.join(d, "in.raw"), os.path.join(d, "a.v"), os.path.join(d, "b.v")
        with open(raw, "wb") as f:
            f.write(rows)
        _run("rawload", raw, v, str(w), str(h), str(bands))
        _run("copy", v, out, "--interpretation", "srgb")
        src = out
        if "cmyk" in mods:
            _run("colourspace", src, os.path.join(d, "c.v"), "cmyk")
            src = os.path.join(d, "c.v")
        if "grey" in mods:
            _run("colourspace", src, os.path.join(d, "g.v"), "b-w")
            src = os.path.join(d, "g.v")
        target = os.path.join(d, "img." + fmt)
        if fmt == "jpeg":
            _run("jpegsave", src, target, "--Q", "85", "--strip")
        elif fmt == "png":
            _run("pngsave", src, target, "--strip")
        else:
            _run("webpsave", src, target, "--Q", "85", "--strip")
        with open(target, "rb") as f:
            data = f.read()
    if "exif6" in mods and fmt == "jpeg":
        data = _exif_orientation(data, 6)
    if "thumb" in mods and fmt == "jpeg":
        data = _exif_thumbnail(data, image("jpeg-160x120")[1])
    if "trailer" in mods and fmt == "jpeg":
        data = data + b"SEFH" + bytes((i * 37) % 256 for i in range(8192))
    return TYPES[fmt], data


def image(spec):
    with _lock:
        hit = _cache.get(spec)
    if hit:
        return hit
    made = make_image(spec)
    with _lock:
        _cache[spec] = made
    return made


def _latency(req):
    ms = req.fake.config.get("latency_ms", 0) or 0
    if ms:
        time.sleep(ms / 1000.0)


@fake.route("GET", r"/p/([^/]+)(?:/.*)?")
def photo(req, spec):
    ctype, data = image(spec)
    _latency(req)
    return 200, {"Content-Type": ctype, "Cache-Control": "max-age=86400"}, data


@fake.route("GET", r"/slow/([0-9]{1,6})/([^/]+)(?:/.*)?")
def slow(req, ms, spec):
    ctype, data = image(spec)
    if req.fake.stopping.wait(int(ms) / 1000.0):
        raise Abort(503, "stopping\n")
    return 200, {"Content-Type": ctype}, data


@fake.route("GET", r"/blocked(?:/.*)?")
def blocked(req):
    page = ("<!DOCTYPE html><html><head><title>Access Denied</title></head><body>"
            "<h1>Access Denied</h1><p>You don't have permission to access this resource."
            "</p><p>Reference #18.4f2c1402.1700000000.1a2b3c4d</p></body></html>\n")
    return 200, {"Content-Type": "text/html; charset=utf-8"}, page


@fake.route("GET", r"/truncated/([^/]+)(?:/.*)?")
def truncated(req, spec):
    ctype, data = image(spec)
    return 200, {"Content-Type": ctype}, data[: len(data) * 6 // 10]


@fake.route("GET", r"/cutmain/([0-9]{1,7})/([^/]+)(?:/.*)?")
def cutmain(req, n, spec):
    ctype, data = image(spec)
    return 200, {"Content-Type": ctype}, data[: _main_scan_start(data) + int(n)]


@fake.route("GET", r"/cuteoi/([0-9]{1,7})/([^/]+)(?:/.*)?")
def cuteoi(req, n, spec):
    ctype, data = image(spec)
    return 200, {"Content-Type": ctype}, data[: _main_scan_start(data) + int(n)] + b"\xff\xd9"


@fake.route("GET", r"/redirect/([0-9]{1,2})(/.*)")
def redirect(req, n, rest):
    n = int(n)
    target = rest if n <= 1 else "/redirect/%d%s" % (n - 1, rest)
    return 302, {"Location": target, "Content-Type": "text/plain"}, "see %s\n" % target


@fake.route("GET", r"/redirect-host/([0-9a-zA-Z.:\[\]-]{1,64})(/.*)")
def redirect_host(req, host, rest):
    port = (req.header("host") or "").rpartition(":")[2]
    target = "http://%s:%s%s" % (host, port, rest)
    return 302, {"Location": target, "Content-Type": "text/plain"}, "see %s\n" % target


@fake.route("GET", r"/redirect-file(?:/.*)?")
def redirect_file(req):
    return 302, {"Location": "file:///etc/passwd", "Content-Type": "text/plain"}, "see file\n"


@fake.route("GET", r"/cut/([^/]+)(?:/.*)?")
def cut(req, spec):
    ctype, data = image(spec)

    def gen():
        yield data[: len(data) * 6 // 10]
        # the server drops the connection (handled as a client going away)
        raise ConnectionAbortedError("cut short on purpose")
    return 200, {"Content-Type": ctype, "Content-Length": str(len(data))}, gen()


@fake.route("GET", r"/empty(?:/.*)?")
def empty(req):
    return 200, {"Content-Type": "image/jpeg", "Content-Length": "0"}, b""


@fake.route("GET", r"/missing(?:/.*)?")
def missing(req):
    return 404, {"Content-Type": "text/html"}, "<html><body>404 Not Found</body></html>\n"


if __name__ == "__main__":
    sys.exit(fake.main())
