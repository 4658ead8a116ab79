#!/usr/bin/env python3
"""gemini — fake Generative Language API: POST /v1beta/models/M:generateContent.

Auth `x-goog-api-key: test-key` or `?key=test-key` (400 INVALID_ARGUMENT
otherwise, Google's error shape). The candidate's text is
`config["reply_text"]` when set, else `config["reply"]` dumped as JSON (a
mood JSON by default). `config["blocked"]` answers with promptFeedback and
no candidates. Failures come from fakelib's rules (README.md).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import REASONS, Abort, Fake  # noqa: E402
from llmstream import sse  # noqa: E402

MOOD = {"valence": 0.3, "arousal": 0.7, "dominance": 0.4, "frustration": 0.6,
        "urgency": 0.2, "confidence": 0.5, "fatigue": 0.2,
        "topic_shift": False, "thread_break": False}

fake = Fake("gemini", config={"reply": MOOD, "reply_text": None, "blocked": False,
                              "key": "test-key"})


@fake.route("POST", r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)")
def generate(req, model, method="generateContent"):
    if fake.config["key"] not in (req.header("x-goog-api-key"), req.args.get("key")):
        raise Abort(400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                    "status": "INVALID_ARGUMENT"}})
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        raise Abort(400, {"error": {"code": 400, "message": "Invalid JSON payload: contents",
                                    "status": "INVALID_ARGUMENT"}})
    if fake.config["blocked"]:
        return 200, {}, {"promptFeedback": {"blockReason": "SAFETY"}}
    text = fake.config["reply_text"]
    if text is None:
        text = json.dumps(fake.config["reply"])
    if method == "streamGenerateContent":
        if req.args.get("alt") != "sse":
            raise Abort(400, {"error": {"code": 400, "message": "fake: only alt=sse is served",
                                        "status": "INVALID_ARGUMENT"}})
        # GenerateContentResponse chunks; the last has finishReason and usage; no [DONE]
        def chunk(p, finish=None):
            c = {"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}],
                 "modelVersion": model}
            if finish:
                c["candidates"][0]["finishReason"] = finish
                c["usageMetadata"] = {"promptTokenCount": 60, "candidatesTokenCount": 40,
                                      "totalTokenCount": 100}
            return c
        return 200, {"Content-Type": "text/event-stream"}, sse(
            fake, text, lambda p: (None, chunk(p)), tail=[(None, chunk("", "STOP"))])
    return 200, {}, {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "STOP", "index": 0, "safetyRatings": []}],
        "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 40,
                          "totalTokenCount": 100},
        "modelVersion": model}


fake.error_body = lambda req, status, msg: ({}, {"error": {
    "code": status, "message": msg, "status": REASONS.get(status, "UNKNOWN")}})

if __name__ == "__main__":
    sys.exit(fake.main())
