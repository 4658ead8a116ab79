#!/usr/bin/env python3
"""qwen — fake Alibaba DashScope in OpenAI-compatible mode:
POST /compatible-mode/v1/chat/completions.

Auth `Authorization: Bearer test-key` (401 with DashScope's OpenAI-style
error body and a top-level request_id). `model` and `messages` required
(400). The answer's content is `config["reply_text"]`. Failures (429
"Requests rate limit exceeded", 500, slow, malformed) from fakelib's rules.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402
from llmstream import sse  # noqa: E402

fake = Fake("qwen", config={"reply_text": "Привет от Qwen.", "key": "test-key"})


def error(code, msg, typ="invalid_request_error"):
    return {"error": {"message": msg, "type": typ, "param": None, "code": code},
            "request_id": "fake-req"}


@fake.route("POST", r"/compatible-mode/v1/chat/completions")
def chat(req):
    if req.bearer() != fake.config["key"]:
        raise Abort(401, error("invalid_api_key", "Incorrect API key provided."))
    body = req.json()
    if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
        raise Abort(400, error("invalid_parameter_error", "model and messages are required"))
    if body.get("stream") is True:  # DashScope's OpenAI-mode chunks, then [DONE]
        def chunk(delta, finish=None, usage=None):
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": body["model"], "choices": [] if usage else [
                        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    "usage": usage}
        return 200, {"Content-Type": "text/event-stream"}, sse(
            fake, fake.config["reply_text"], lambda p: (None, chunk({"content": p})),
            tail=[(None, chunk({}, "stop")),
                  (None, chunk(None, usage={"prompt_tokens": 110, "completion_tokens": 25,
                                            "total_tokens": 135})), (None, "[DONE]")])
    return 200, {}, {
        "id": "chatcmpl-fake%d" % int(time.time() * 1000), "object": "chat.completion",
        "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": fake.config["reply_text"]},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 110, "completion_tokens": 25, "total_tokens": 135}}


fake.error_body = lambda req, status, msg: ({}, error(
    "Throttling.RateQuota" if status == 429 else "InternalError",
    "Requests rate limit exceeded, please try again later." if status == 429 else msg,
    "limit_requests" if status == 429 else "internal_error"))

if __name__ == "__main__":
    sys.exit(fake.main())
