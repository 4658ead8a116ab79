#!/usr/bin/env python3
"""stamp.py — the reader of bench/recognize/overhead: sends BODY COUNT
times, one request after another, and prints each "stage" line of each
answer as "MS STAGE", MS the milliseconds from that request's first byte
sent to the arrival of the line's last byte (one read per arrival, unlike
bash's read builtin, which reads a socket or a pipe a byte per system call
and so took milliseconds for a 2.5 kB done line).

usage: stamp.py BODY COUNT http PORT kept|fresh [PATH]
       stamp.py BODY COUNT pipe CMD [ARG...]
  PATH        the route posted to (default /recognize)
  http kept   one connection for all the requests (HTTP/1.1 keep-alive)
  http fresh  a new connection per request (Connection: close)
  pipe        CMD started once, a request line on its stdin each time
"""
import json
import os
import socket
import subprocess
import sys
import time


def stages(read, send, first_bytes, buf):
    """Send one request; print its stage lines until done. Returns the
    bytes read past the done line (the next answer's framing)."""
    t0 = time.perf_counter()
    send(first_bytes)
    while True:
        data = read()
        now = time.perf_counter()
        if not data:
            sys.exit("stamp.py: the answer ended before its done line")
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if b'"stage"' not in line:
                continue  # HTTP head, chunk sizes and ends
            stage = json.loads(line)["stage"]
            print("%d %s" % (round((now - t0) * 1000), stage), flush=True)
            if stage == "done":
                return buf


def main():
    body, count, kind = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
    if kind == "pipe":
        p = subprocess.Popen(sys.argv[4:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        fd = p.stdout.fileno()
        buf = b""
        for _ in range(count):
            def send(b):
                p.stdin.write(b)
                p.stdin.flush()
            buf = stages(lambda: os.read(fd, 65536), send, body + b"\n", buf)
        p.stdin.close()
        p.wait()
        return
    port, mode = int(sys.argv[4]), sys.argv[5]
    path = sys.argv[6].encode() if len(sys.argv) > 6 else b"/recognize"
    head = b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n" % len(body)
    if mode == "fresh":
        head += b"Connection: close\r\n"
    req = head + b"\r\n" + body
    s, buf = None, b""
    for _ in range(count):
        if s is None:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
        buf = stages(lambda: s.recv(65536), s.sendall, req, buf)
        if mode == "fresh":
            s.close()
            s = None
    if s is not None:
        s.close()


if __name__ == "__main__":
    main()
