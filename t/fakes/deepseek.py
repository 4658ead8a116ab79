#!/usr/bin/env python3
"""deepseek — fake DeepSeek API (OpenAI-compatible): POST /chat/completions.

Auth `Authorization: Bearer test-key` (401 otherwise, OpenAI-style error
body). The answer's message content is `config["reply_text"]` when set
(garbage, fenced JSON, …), else `config["reply"]` dumped as JSON — by
default a mood JSON a classifier would give. Failures (429, 500, slow,
hang, malformed) come from the shared rules in fakelib (see README.md);
out-of-range answers are a config change: {"reply": {"valence": 1.7, …}}.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402
from llmstream import sse  # noqa: E402

MOOD = {"valence": 0.8, "arousal": 0.6, "dominance": 0.55, "frustration": 0.05,
        "urgency": 0.1, "confidence": 0.8, "fatigue": 0.1,
        "topic_shift": False, "thread_break": False}

fake = Fake("deepseek", config={"reply": MOOD, "reply_text": None, "key": "test-key"})


@fake.route("POST", r"/(?:v1/)?chat/completions")
def chat(req):
    if req.bearer() != fake.config["key"]:
        raise Abort(401, {"error": {"message": "Authentication Fails (no such user)",
                                    "type": "authentication_error", "param": None,
                                    "code": "invalid_request_error"}})
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) \
            or not body.get("model"):
        raise Abort(422, {"error": {"message": "Invalid request: model and messages are required",
                                    "type": "invalid_request_error", "param": None,
                                    "code": "invalid_request_error"}})
    text = fake.config["reply_text"]
    if text is None:
        text = json.dumps(fake.config["reply"])
    if body.get("stream") is True:  # chat.completion.chunk events, then [DONE]
        def chunk(delta, finish=None, usage=None):
            return {"id": "fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": body["model"], "choices": [] if usage else [
                        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    "usage": usage}
        return 200, {"Content-Type": "text/event-stream"}, sse(
            fake, text, lambda p: (None, chunk({"content": p})),
            head=[(None, chunk({"role": "assistant", "content": ""}))],
            tail=[(None, chunk({}, "stop")),
                  (None, chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 40,
                                            "total_tokens": 90})), (None, "[DONE]")])
    return 200, {}, {
        "id": "fake-%d" % int(time.time() * 1000), "object": "chat.completion",
        "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90,
                  "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 50}}


fake.error_body = lambda req, status, msg: ({}, {"error": {
    "message": msg, "type": "rate_limit_error" if status == 429 else "server_error",
    "param": None, "code": str(status)}})

if __name__ == "__main__":
    sys.exit(fake.main())
