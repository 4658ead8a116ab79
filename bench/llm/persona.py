#!/usr/bin/env python3
"""persona.py PORT_FILE DELAY_MS — a stand-in Persona Agent for
bench/llm/run's whole turn: POST /persona answers a persona after
DELAY_MS (keep-alive HTTP/1.1); /persona/feedback and /persona/flush
answer {} at once. Exits when its parent does."""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, delay = sys.argv[1], float(sys.argv[2]) / 1000
persona = {"persona": {"persona_directive": {"text": "You are UNDE."},
                       "voice_params": {"preset": "neutral_confident"},
                       "avatar_state": {"expression": "neutral"},
                       "render_hints": {"expression": "neutral"}}}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/persona":
            time.sleep(delay)
            body = json.dumps(persona).encode()
        else:
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(port_file + ".tmp", port_file)
ppid = os.getppid()


def watch():
    while os.getppid() == ppid:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=watch, daemon=True).start()
srv.serve_forever()
