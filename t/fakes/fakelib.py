"""fakelib — a small framework for fake upstream HTTP servers used by the tests.

Standard library only, so a fake runs under any python3 >= 3.7 (Debian's
/usr/bin/python3 and pyenv's alike).  A fake is a `Fake` with routes:

    from fakelib import Fake, Abort

    fake = Fake("gemini")

    @fake.route("POST", r"/v1beta/models/([^/:]+):generateContent")
    def generate(req, model):
        if req.args.get("key") != "test-key":
            raise Abort(400, {"error": {"code": 400, "message": "API key not valid"}})
        return 200, {}, {"candidates": [...]}

    if __name__ == "__main__":
        fake.main()

A route's path is a regular expression (string or compiled) that must match
the whole path, without the query ("/json" matches only "/json"); its groups
are passed to the handler after the request.  Methods: a name, a list, or "*".
A handler returns (status, headers, body), (status, body) or just a body.
A body is bytes, str (text/plain unless a Content-Type is given), any other
JSON value (sent as application/json), None (empty), or an iterator of
bytes/str chunks (streamed with chunked transfer encoding, e.g. SSE; or sent
raw when the handler sets Content-Length itself).

Every fake also answers the control API under /_fake/ (see README.md):
fail, reset, requests, config, health.  Command line: --port N (default 0,
an OS-chosen free port), --port-file PATH (written atomically once
listening), --host, --watch-pid PID (exit when PID is gone), plus anything a
fake adds to `fake.argparser` (parsed values in `fake.args`).
"""

import argparse
import base64
import copy
import email.utils
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Fake", "Request", "Abort", "json_body", "http_date"]

FAIL_MODES = ("429", "500", "503", "hang", "malformed", "close", "slow")
MALFORMED_BODY = b'{"truncated": '
REASONS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class Abort(Exception):
    """Raised by a handler to answer at once with status and body (e.g. 401)."""

    def __init__(self, status, body=None, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class Cut(Exception):
    """Raised by a streamed body's generator: the connection is cut there,
    without the body's end (a provider dying mid-stream)."""


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to leave serve_forever."""


def json_body(obj):
    """Encode obj as compact UTF-8 JSON bytes."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Request:
    """What a handler sees: method, path, query (raw string), args (name ->
    last value), headers (lowercase name -> value), body (bytes), match (the
    route's regex match or None) and fake (for fake.config / fake.state)."""

    def __init__(self, fake, method, path, query, headers, body):
        self.fake, self.method, self.path, self.query = fake, method, path, query
        self.headers, self.body, self.match = headers, body, None
        self.args = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))

    @property
    def text(self):
        """The body decoded as UTF-8, or None when it is not valid UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def json(self):
        """The body parsed as JSON; a 400 Abort when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Abort(400, {"error": {"code": 400, "message": "invalid JSON body: %s" % e}})

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def bearer(self):
        """The token of an "Authorization: Bearer TOKEN" header, or None."""
        auth = self.header("authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class _Route:
    def __init__(self, methods, path, handler):
        self.methods = {m.upper() for m in methods}
        self.regex = re.compile(path) if isinstance(path, str) else path
        self.handler = handler

    def match(self, path):
        m = self.regex.fullmatch(path)
        return m


class _Rule:
    """One failure rule from POST /_fake/fail."""

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("rule must be a JSON object")
        mode = str(spec.get("mode", ""))
        if mode not in FAIL_MODES and not re.fullmatch(r"[1-5][0-9][0-9]", mode):
            raise ValueError("mode must be one of %s or an HTTP status" % ", ".join(FAIL_MODES))
        self.mode = mode
        self.path = spec.get("path")
        self.regex = None
        if self.path is not None:
            if not isinstance(self.path, str):
                raise ValueError("path must be a string")
            try:
                self.regex = re.compile(self.path)
            except re.error:
                self.regex = None  # not a regex: a plain prefix
        self.method = spec.get("method")
        self.count = spec.get("count", 1)
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < -1 or self.count == 0:
            raise ValueError("count must be a positive integer or -1")
        ra = spec.get("retry_after")
        self.retry_after = None if ra is None else str(ra)
        default_delay = {"hang": 60000, "slow": 1000}.get(mode, 0)
        self.delay_ms = spec.get("delay_ms", default_delay)
        if not isinstance(self.delay_ms, (int, float)) or self.delay_ms < 0:
            raise ValueError("delay_ms must be a non-negative number")
        self.then = spec.get("then", "answer")
        if self.then not in ("answer", "close"):
            raise ValueError('then must be "answer" or "close"')
        self.body = spec.get("body")
        self.headers = spec.get("headers") or {}
        if not isinstance(self.headers, dict):
            raise ValueError("headers must be an object")
        self.spec = dict(spec)

    def matches(self, method, path):
        if self.method and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        return path.startswith(self.path) or bool(self.regex and self.regex.match(path))


class Fake:
    """A fake upstream: routes + failure rules + request log + control API."""

    def __init__(self, name, config=None, description=None):
        self.name = name
        self.routes = []
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        self.defaults = copy.deepcopy(config or {})
        self.config = copy.deepcopy(self.defaults)
        self.state = {}  # free for stateful fakes; emptied by reset
        self.reset_hooks = []
        self.stopping = threading.Event()
        self.server = None
        self.args = None
        self.argparser = argparse.ArgumentParser(
            prog=name, description=description or "fake %s server for tests" % name)
        ap = self.argparser
        ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        ap.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
        ap.add_argument("--port-file", help="write the real port here once listening")
        ap.add_argument("--watch-pid", type=int, help="exit when this process is gone")

    # -- routes ---------------------------------------------------------------

    def add_route(self, methods, path, handler):
        if isinstance(methods, str):
            methods = [methods]
        self.routes.append(_Route(methods, path, handler))

    def route(self, methods, path):
        """Decorator: @fake.route("POST", "/v1/x") or (["GET", "POST"], r"/a/(\\d+)")."""
        def deco(fn):
            self.add_route(methods, path, fn)
            return fn
        return deco

    def on_reset(self, fn):
        """Decorator: fn(fake) runs on POST /_fake/reset (after state is emptied)."""
        self.reset_hooks.append(fn)
        return fn

    def error_body(self, req, status, message):
        """The (headers, body) of an injected error; override for a provider's shape."""
        return {}, {"error": {"code": status, "status": REASONS.get(status, "ERROR"),
                              "type": "fake_injected_error", "message": message}}

    # -- control API ----------------------------------------------------------

    def reset(self):
        with self.lock:
            self.rules.clear()
            self.log.clear()
            self.config = copy.deepcopy(self.defaults)
            self.state.clear()
        for fn in self.reset_hooks:
            fn(self)

    def take_rule(self, method, path):
        """The first live rule matching, with its count spent; or None."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.count > 0:
                        rule.count -= 1
                        if rule.count == 0:
                            self.rules.remove(rule)
                    return rule
        return None

    def _control(self, req):
        p = req.path[len("/_fake/"):]
        if p == "health" and req.method in ("GET", "HEAD"):
            return 200, {}, {"status": "ok", "fake": self.name}
        if p == "fail" and req.method == "POST":
            try:
                spec = json.loads(req.body.decode("utf-8") or "null")
                rule = _Rule(spec)
            except (UnicodeDecodeError, ValueError) as e:
                return 400, {}, {"error": {"code": 400, "message": "bad rule: %s" % e}}
            with self.lock:
                self.rules.append(rule)
            return 200, {}, {"ok": True, "rule": rule.spec}
        if p == "reset" and req.method == "POST":
            self.reset()
            return 200, {}, {"ok": True}
        if p == "requests" and req.method == "GET":
            with self.lock:
                entries = copy.deepcopy(self.log)
            want = req.args.get("path")
            if want:
                try:
                    rx = re.compile(want)
                except re.error:
                    rx = None
                entries = [e for e in entries
                           if e["path"].startswith(want) or (rx and rx.match(e["path"]))]
            return 200, {}, entries
        if p == "rules" and req.method == "GET":
            with self.lock:
                return 200, {}, [dict(r.spec, remaining=r.count) for r in self.rules]
        if p == "config":
            if req.method == "POST":
                upd = req.json()
                if not isinstance(upd, dict):
                    raise Abort(400, {"error": {"code": 400, "message": "config must be an object"}})
                with self.lock:
                    self.config.update(upd)
            if req.method in ("GET", "POST"):
                with self.lock:
                    return 200, {}, self.config
        return 404, {}, {"error": {"code": 404, "message": "no control endpoint %s %s" % (req.method, req.path)}}

    # -- dispatch ---------------------------------------------------------------

    def dispatch(self, req):
        allowed = set()
        for r in self.routes:
            m = r.match(req.path)
            if m is None:
                continue
            if req.method in r.methods or "*" in r.methods or (req.method == "HEAD" and "GET" in r.methods):
                req.match = m
                return r.handler(req, *m.groups())
            allowed |= r.methods
        if allowed:
            return 405, {"Allow": ", ".join(sorted(allowed))}, {
                "error": {"code": 405, "message": "method %s not allowed" % req.method}}
        return 404, {}, {"error": {"code": 404, "message": "no route for %s %s" % (req.method, req.path)}}

    # -- running ----------------------------------------------------------------

    def main(self, argv=None):
        self.args = self.argparser.parse_args(argv)
        # Drop inherited descriptors (bats' output pipes among them): a fake
        # holding one would keep its parent waiting for EOF, forever.
        os.closerange(3, _max_fd())
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = _Server((self.args.host, self.args.port), handler)
        port = self.server.server_address[1]

        def stop(signum, frame):
            raise _Stop()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

        if self.args.port_file:
            tmp = "%s.tmp.%d" % (self.args.port_file, os.getpid())
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, self.args.port_file)
        print("listening %d" % port, flush=True)
        if self.args.watch_pid:
            threading.Thread(target=self._watch, args=(self.args.watch_pid,), daemon=True).start()
        try:
            self.server.serve_forever(poll_interval=0.2)
        except _Stop:
            pass
        finally:
            self.stopping.set()
            self.server.server_close()
            if self.args.port_file:
                try:
                    os.unlink(self.args.port_file)
                except OSError:
                    pass
        print("stopped", flush=True)
        return 0

    def _watch(self, pid):
        while not self.stopping.wait(0.25):
            if not _alive(pid):
                sys.stderr.write("watched process %d is gone: stopping\n" % pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return


def _max_fd():
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 1 << 20)
    except (ValueError, OSError):
        return 4096


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never join handler threads (idle keep-alive, hang)
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when a client opens ten
    # connections at once; the retransmit second made concurrency look serial
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name (getfqdn): a
        # reverse DNS lookup that can stall on a machine without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return  # the client went away (e.g. curl --max-time): not news
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "unde-fake/1"
    fake = None  # set per Fake by main()

    def setup(self):
        super().setup()
        # A streamed body (chunked audio, SSE) goes out in small writes: with
        # Nagle on, a write after the headers waits for the client's delayed
        # ACK (~40 ms on a kept-alive connection), a pace no real server has.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s [%s] %s\n" % (self.fake.name, self.log_date_time_string(), fmt % args))

    def __getattr__(self, name):
        # do_GET, do_POST, do_PUT, ...: every method goes through _dispatch.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # -- request body -----------------------------------------------------------

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # -- response ---------------------------------------------------------------

    def _send(self, status, headers, body):
        """Send one response; Content-Length always, unless body is a stream."""
        headers = {k: str(v) for k, v in (headers or {}).items()}
        lower = {k.lower() for k in headers}
        stream = None
        if body is None:
            data = b""
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            if "content-type" not in lower and data:
                headers["Content-Type"] = "application/octet-stream"
        elif isinstance(body, str):
            data = body.encode("utf-8")
            if "content-type" not in lower:
                headers["Content-Type"] = "text/plain; charset=utf-8"
        elif isinstance(body, (dict, list, int, float, bool)):
            data = json_body(body)
            if "content-type" not in lower:
                headers["Content-Type"] = "application/json"
        elif hasattr(body, "__iter__") or hasattr(body, "__next__"):
            data, stream = b"", iter(body)
        else:
            raise TypeError("cannot send a body of type %s" % type(body).__name__)
        no_body = status < 200 or status in (204, 304) or self.command == "HEAD"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        chunked = False
        if stream is not None:
            if "content-length" not in lower:
                if self.request_version == "HTTP/1.1":
                    self.send_header("Transfer-Encoding", "chunked")
                    chunked = True
                else:
                    self.close_connection = True
        elif status >= 200 and status not in (204, 304) and "content-length" not in lower:
            self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            self.wfile.flush()
            return
        if stream is None:
            self.wfile.write(data)
        else:
            for chunk in _cuttable(stream):
                if chunk is Cut:  # the generator asked: cut, no body end
                    self.close_connection = True
                    self.wfile.flush()
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8")
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @staticmethod
    def _normalize(result):
        if isinstance(result, tuple):
            if len(result) == 3:
                return result
            if len(result) == 2:
                return result[0], {}, result[1]
        return 200, {}, result

    # -- one request ------------------------------------------------------------

    def _dispatch(self):
        fake = self.fake
        url = urllib.parse.urlsplit(self.path)
        path = url.path or "/"
        try:
            body = self._read_body()
        except (ValueError, ConnectionError) as e:
            self.close_connection = True
            self._send(400, {}, {"error": {"code": 400, "message": "bad request body: %s" % e}})
            return
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        req = Request(fake, self.command, path, url.query, headers, body)

        if path.startswith("/_fake/"):
            self._answer(req, fake._control)
            return

        entry = {"method": self.command, "path": path, "query": url.query,
                 "args": req.args, "headers": headers, "timestamp": time.time(),
                 "status": None, "fault": None,
                 # the client's source port: one per TCP connection, so
                 # tests can count connections (keep-alive reuse)
                 "client_port": self.client_address[1]}
        text = req.text
        if text is None:
            entry["body"], entry["body_encoding"] = base64.b64encode(body).decode(), "base64"
        else:
            entry["body"], entry["body_encoding"] = text, "utf-8"
        try:
            entry["json"] = json.loads(text) if text else None
        except ValueError:
            entry["json"] = None
        with fake.lock:
            fake.log.append(entry)

        rule = fake.take_rule(self.command, path)
        if rule is not None:
            entry["fault"] = rule.mode
            if self._fault(req, rule, entry):
                return
        entry["status"] = self._answer(req, fake.dispatch)

    def _answer(self, req, fn):
        try:
            status, headers, body = self._normalize(fn(req))
        except Abort as a:
            status, headers, body = a.status, a.headers, a.body
        except Exception:
            tb = traceback.format_exc()
            sys.stderr.write(tb)
            status, headers, body = 500, {}, {"error": {"code": 500, "message": "fake handler raised",
                                                        "traceback": tb}}
        self._send(status, headers, body)
        return status

    def _fault(self, req, rule, entry):
        """Apply a failure rule; True when the request is fully handled."""
        mode = rule.mode
        if mode in ("hang", "slow"):
            if self.fake.stopping.wait(rule.delay_ms / 1000.0):
                self.close_connection = True
                return True
            if mode == "hang" and rule.then == "close":
                self.close_connection = True
                return True
            return False  # now answer normally
        if mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if mode == "malformed":
            body = rule.body.encode() if isinstance(rule.body, str) else MALFORMED_BODY
            headers = dict({"Content-Type": "application/json"}, **rule.headers)
            self._send(200, headers, body)
            entry["status"] = 200
            return True
        status = int(mode)
        if rule.body is not None:
            headers, body = {}, rule.body
        else:
            headers, body = self.fake.error_body(req, status, "fake: injected %d" % status)
        headers = dict(headers, **rule.headers)
        if rule.retry_after is not None:
            headers["Retry-After"] = rule.retry_after
        self._send(status, headers, body)
        entry["status"] = status
        return True


def _cuttable(stream):
    """The stream's chunks, then Cut itself if its generator raised Cut."""
    try:
        for chunk in stream:
            yield chunk
    except Cut:
        yield Cut


def http_date(ts=None):
    """An HTTP-date (for Retry-After, Date, Last-Modified) of ts, default now."""
    return email.utils.formatdate(ts, usegmt=True)
