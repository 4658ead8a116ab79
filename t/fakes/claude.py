#!/usr/bin/env python3
"""claude — fake Anthropic Messages API: POST /v1/messages.

Auth `x-api-key: test-key` and `anthropic-version` required (401 / 400
otherwise, Anthropic's error shape {"type":"error","error":{type,message}}).
`max_tokens`, `model` and `messages` are required (400). The answer's text is
`config["reply_text"]`; `config["reply_blocks"]`, when set, replaces the
content array (e.g. [] for an answer without text). Failures (429 with
retry-after, 500, 529, slow, malformed) come from fakelib's rules.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402
from llmstream import sse  # noqa: E402

fake = Fake("claude", config={"reply_text": "Привет от Claude.", "reply_blocks": None,
                              "key": "test-key"})

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


def error(status, msg):
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": msg},
            "request_id": "req_fake"}


@fake.route("POST", r"/v1/messages")
def messages(req):
    if req.header("x-api-key") != fake.config["key"]:
        raise Abort(401, error(401, "invalid x-api-key"))
    if not req.header("anthropic-version"):
        raise Abort(400, error(400, "anthropic-version: header is required"))
    body = req.json()
    if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("max_tokens"), int) \
            or not isinstance(body.get("messages"), list):
        raise Abort(400, error(400, "model, max_tokens and messages are required"))
    blocks = fake.config["reply_blocks"]
    if blocks is None:
        blocks = [{"type": "text", "text": fake.config["reply_text"]}]
    if body.get("stream") is True:  # the Messages streaming events
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        msg = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 120, "output_tokens": 1}}
        return 200, {"Content-Type": "text/event-stream"}, sse(
            fake, text, lambda p: ("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": p}}),
            head=[("message_start", {"type": "message_start", "message": msg}),
                  ("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
                  ("ping", {"type": "ping"})],
            tail=[("content_block_stop", {"type": "content_block_stop", "index": 0}),
                  ("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": 30}}),
                  ("message_stop", {"type": "message_stop"})])
    return 200, {}, {"id": "msg_fake%d" % int(time.time() * 1000), "type": "message",
                     "role": "assistant", "model": body["model"], "content": blocks,
                     "stop_reason": "end_turn", "stop_sequence": None,
                     "usage": {"input_tokens": 120, "output_tokens": 30,
                               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


fake.error_body = lambda req, status, msg: ({}, error(status, msg))

if __name__ == "__main__":
    sys.exit(fake.main())
