#!/usr/bin/env python3
"""ha-writer.py — the app side of §14's failover drill: one user saving
turns (a user + an assistant message, client-generated UUIDs) at a fixed
rate through one long-lived `unde-shard save` process, which has to follow
the failover by itself, while keeping the client's replay buffer.

usage: ha-writer.py URL USER_ID RATE SECONDS OUTDIR

Writes OUTDIR/sent.jsonl (every turn sent), OUTDIR/acked.jsonl (the turns
save acknowledged, with the time of the ack), OUTDIR/save.err (save's log)
and prints one JSON line: sent, acked, errors, the longest gap between two
acks in seconds (the RTO the client saw) and when it started. Standard
library only."""
import json
import subprocess
import sys
import threading
import time
import uuid


def main():
    url, user, rate, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    err = open(f"{out}/save.err", "w")
    proc = subprocess.Popen(["unde-shard", "save", "--url", url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
    acks = []

    def reader():
        for line in proc.stdout:
            acks.append((time.time(), json.loads(line)))

    t = threading.Thread(target=reader)
    t.start()
    sent = open(f"{out}/sent.jsonl", "w")
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        due = start + n / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        n += 1
        rec = {"user_id": user, "messages": [
            {"id": str(uuid.uuid4()), "role": "user", "content": f"turn {n}: a red linen dress for the weekend"},
            {"id": str(uuid.uuid4()), "role": "assistant", "content": f"answer {n}: try the linen midi"}]}
        line = json.dumps(rec)
        sent.write(line + "\n")
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    sent.close()
    proc.stdin.close()
    t.join()
    proc.wait()
    with open(f"{out}/acked.jsonl", "w") as f:
        for ts, rec in acks:
            rec["acked_at"] = ts
            f.write(json.dumps(rec) + "\n")
    gap = max((b[0] - a[0] for a, b in zip(acks, acks[1:])), default=0)
    print(json.dumps({"sent": n, "acked": len(acks), "exit": proc.returncode,
                      "max_ack_gap_seconds": round(gap, 2), "started": start}))


if __name__ == "__main__":
    main()
