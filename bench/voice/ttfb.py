#!/usr/bin/python3
"""ttfb.py URL CONNS MSGS TEXT — CONNS WebSocket connections at once (Debian's
python3-websockets), each sending MSGS streaming requests for TEXT one after
the other; prints one JSON line: time to the first binary frame and to the
final text frame, p50/p95/p99/max in ms, over all CONNS × MSGS requests.
With URL http(s)://… instead, times POST URL (the fake ElevenLabs /stream)
directly, for the baseline: its first AUDIO_CHUNK_SIZE (4096) bytes."""
import asyncio
import json
import sys
import time
import urllib.request

import websockets


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))], 2)


async def one(url, msgs, text, first, total):
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


def direct(url, n, text):
    first, total = [], []
    for _ in range(n):
        req = urllib.request.Request(url, data=json.dumps({"text": text}).encode(),
                                     headers={"xi-api-key": "test-key",
                                              "Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req) as r:
            r.read(4096)  # what unde-voice sends as its first chunk (AUDIO_CHUNK_SIZE)
            first.append((time.monotonic() - t0) * 1000)
            r.read()
            total.append((time.monotonic() - t0) * 1000)
    return first, total


async def main(url, conns, msgs, text):
    first, total = [], []
    if url.startswith("http"):
        first, total = direct(url, conns * msgs, text)
    else:
        await asyncio.gather(*(one(url, msgs, text, first, total) for _ in range(conns)))
    out = {"conns": conns, "requests": len(total)}
    for name, xs in (("first_chunk_ms", first), ("total_ms", total)):
        out[name] = {"p50": pct(xs, 50), "p95": pct(xs, 95), "p99": pct(xs, 99),
                     "max": round(max(xs), 2)}
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
