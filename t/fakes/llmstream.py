"""llmstream — the streamed answers of the LLM fakes (deepseek, qwen, gemini,
claude), in each provider's own SSE wire format, with failures on demand
through config knobs (POST /_fake/config):

  stream_chunks        list of text pieces (default: the reply cut after spaces)
  stream_cut_after     N: after N text events the connection is cut (no end)
  stream_garbage_after N: after N text events an event that is not JSON
  stream_hold_file     path: the last text event waits until it exists (60 s)
"""
import json
import os
import time

from fakelib import Cut


def pieces(fake, text):
    ch = fake.config.get("stream_chunks")
    if ch:
        return list(ch)
    out, cur = [], ""
    for c in text:
        cur += c
        if c == " ":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def sse(fake, text, event_of, head=(), tail=()):
    """A generator of SSE events: head, one per piece (event_of(piece) gives
    (name or None, data dict)), tail; the knobs above cut or spoil it."""
    cfg = fake.config
    ps = pieces(fake, text)

    def ev(name, data):
        d = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        return ("event: %s\n" % name if name else "") + "data: %s\n\n" % d

    def gen():
        for name, data in head:
            yield ev(name, data)
        for i, p in enumerate(ps):
            if cfg.get("stream_cut_after") is not None and i >= cfg["stream_cut_after"]:
                raise Cut()
            if cfg.get("stream_garbage_after") is not None and i >= cfg["stream_garbage_after"]:
                yield "data: {not json\n\n"
                return
            hold = cfg.get("stream_hold_file")
            if hold and i == len(ps) - 1:
                end = time.time() + 60
                while not os.path.exists(hold) and time.time() < end:
                    time.sleep(0.05)
            yield ev(*event_of(p))
        for name, data in tail:
            yield ev(name, data)
    return gen()
