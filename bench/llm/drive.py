#!/usr/bin/env python3
"""drive.py TURNS_FILE CMD... — feed one unde-llm process the turns of
TURNS_FILE one at a time, as a client would: write a record, wait for its
answer line, note how long that took (ms, one number per line on stdout),
pause GAP_MS (default 50: the after-the-line work, feedback and the
density record, is not the next turn's wait), next. OUT=FILE keeps the
answer lines. A record answered by
no line within 60 s stops the run (exit 1)."""
import os
import select
import subprocess
import sys
import time

turns, cmd = sys.argv[1], sys.argv[2:]
gap = float(os.environ.get("GAP_MS", "50")) / 1000
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
out = p.stdout
buf = b""
keep = open(os.environ["OUT"], "wb") if os.environ.get("OUT") else None
with open(turns, "rb") as f:
    for line in f:
        t0 = time.perf_counter()
        p.stdin.write(line)
        while b"\n" not in buf:
            r, _, _ = select.select([out], [], [], 60)
            chunk = os.read(out.fileno(), 65536) if r else b""
            if not chunk:
                sys.exit("drive.py: no answer line within 60 s")
            buf += chunk
        ms = (time.perf_counter() - t0) * 1000
        answer, buf = buf.split(b"\n", 1)
        if keep:
            keep.write(answer + b"\n")
        print("%.3f" % ms, flush=True)
        time.sleep(gap)
p.stdin.close()
sys.exit(p.wait())
