#!/usr/bin/python3
"""ttfb.py CASE URL CONNS MSGS TEXT — CONNS clients at once, each sending MSGS
streaming requests for TEXT one after the other; prints one JSON line
{"case": CASE, ...}: time to the first audio chunk and to the end of the
reply, p50/p95/p99/max in ms, over all CONNS × MSGS requests. URL is
  ws://…/stream         WebSocket (Debian's python3-websockets): first
                        binary frame, final text frame;
  http://…              POST (the fake ElevenLabs' /stream endpoint, the
                        baseline of the ElevenLabs case): its first 4096
                        bytes (AUDIO_CHUNK_SIZE), then all of it;
  pipe:CMD ARGS…        CMD as a filter, one process per client, a JSON
                        line per request (the baseline of the local case:
                        the same synthesis without unde-httpd and the
                        WebSocket): first "stage":"audio" line, "done" line."""
import asyncio
import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.request

import websockets


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))], 2)


async def one_ws(url, msgs, text, first, total):
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        for _ in range(msgs):
            t0 = time.monotonic()
            await ws.send(json.dumps({"text": text, "stream": True}))
            got_first = False
            while True:
                m = await ws.recv()
                if isinstance(m, bytes):
                    if not got_first:
                        first.append((time.monotonic() - t0) * 1000)
                        got_first = True
                    continue
                total.append((time.monotonic() - t0) * 1000)
                break


def one_http(url, msgs, text, first, total):
    for _ in range(msgs):
        req = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                     headers={"xi-api-key": "test-key",
                                              "Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req) as r:
            r.read(4096)  # what unde-voice sends as its first chunk (AUDIO_CHUNK_SIZE)
            first.append((time.monotonic() - t0) * 1000)
            r.read()
            total.append((time.monotonic() - t0) * 1000)


def one_pipe(cmd, msgs, text, first, total):
    # buffered reads (an unbuffered readline reads a byte per system call),
    # each request flushed at once
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    line = (json.dumps({"text": text, "stream": True}) + "\n").encode()
    try:
        for _ in range(msgs):
            t0 = time.monotonic()
            p.stdin.write(line)
            p.stdin.flush()
            got_first = False
            while True:
                out = p.stdout.readline()
                if not out:
                    raise RuntimeError("the filter ended")
                stage = json.loads(out).get("stage")
                if stage == "audio" and not got_first:
                    first.append((time.monotonic() - t0) * 1000)
                    got_first = True
                if stage == "done" or stage is None:
                    total.append((time.monotonic() - t0) * 1000)
                    break
    finally:
        p.stdin.close()
        p.wait()


def threads(fn, target, conns, msgs, text, first, total):
    ts = [threading.Thread(target=fn, args=(target, msgs, text, first, total)) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


async def main(case, url, conns, msgs, text):
    first, total = [], []
    if url.startswith("http"):
        threads(one_http, url, conns, msgs, text, first, total)
    elif url.startswith("pipe:"):
        threads(one_pipe, shlex.split(url[5:]), conns, msgs, text, first, total)
    else:
        await asyncio.gather(*(one_ws(url, msgs, text, first, total) for _ in range(conns)))
    out = {"case": case, "conns": conns, "requests": len(total)}
    for name, xs in (("first_chunk_ms", first), ("total_ms", total)):
        out[name] = {"p50": pct(xs, 50), "p95": pct(xs, 95), "p99": pct(xs, 99),
                     "max": round(max(xs), 2)}
    print(json.dumps(out), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
