#!/usr/bin/env python3
"""elevenlabs — fake ElevenLabs text-to-speech (upstreams.md §6).

  POST /v1/text-to-speech/{voice_id}?output_format=mp3_44100_128          → audio/mpeg
  POST /v1/text-to-speech/{voice_id}/stream?output_format=mp3_44100_128   → chunked audio/mpeg

Auth `xi-api-key: <config key>` (401 {"detail":{"status":"invalid_api_key",…}}
otherwise); `text` is required (422, FastAPI style); `output_format` must be
one of the MP3/PCM names. The audio is the bytes of config["audio_file"], a
real MP3 the test makes (ffmpeg), so what the command passes on can be
compared byte for byte. /stream sends it in config["chunk_size"] pieces,
config["chunk_delay_ms"] apart (its pace); config["cut_after"] = N drops the
connection after N chunks without the closing chunk (a cut mid-stream);
config["garbage"] answers 200 audio/mpeg with bytes that are not MP3.
429 (detail.status system_busy), 500, slow, hang, close come from the shared
rules (README.md), with ElevenLabs' own error body.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

FORMATS = {"mp3_22050_32", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96", "mp3_44100_128",
           "mp3_44100_192", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100"}

fake = Fake("elevenlabs", config={"key": "test-key", "audio_file": None, "chunk_size": 4096,
                                  "chunk_delay_ms": 0, "cut_after": None, "garbage": False})


class Cut(Exception):
    """Raised inside the streamed body: the connection drops mid-stream."""


def check(req):
    if req.header("xi-api-key") != fake.config["key"]:
        raise Abort(401, {"detail": {"status": "invalid_api_key",
                                     "message": "Invalid API key"}})
    fmt = req.args.get("output_format", "mp3_44100_128")
    if fmt not in FORMATS:
        raise Abort(422, {"detail": [{"loc": ["query", "output_format"],
                                      "msg": "invalid output format", "type": "value_error"}]})
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        raise Abort(422, {"detail": [{"loc": ["body", "text"], "msg": "field required",
                                      "type": "value_error.missing"}]})
    vs = body.get("voice_settings")
    if vs is not None:
        for k in ("stability", "similarity_boost", "style"):
            v = vs.get(k)
            if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise Abort(422, {"detail": [{"loc": ["body", "voice_settings", k],
                                              "msg": "must be in [0, 1]", "type": "value_error"}]})
    return body


def audio():
    if fake.config["garbage"]:
        return b"<html>this is not audio</html>" * 50
    path = fake.config["audio_file"]
    if not path:
        raise Abort(500, {"detail": {"status": "fake_not_configured",
                                     "message": "set audio_file"}})
    with open(path, "rb") as f:
        return f.read()


HEADERS = {"Content-Type": "audio/mpeg", "request-id": "fake-req", "x-character-count": "0"}


def pieces(data):
    """The audio in chunk_size pieces at the configured pace, cut if asked."""
    size = int(fake.config["chunk_size"])
    delay = float(fake.config["chunk_delay_ms"]) / 1000.0
    cut = fake.config["cut_after"]
    for n, i in enumerate(range(0, len(data), size)):
        if cut is not None and n >= int(cut):
            raise Cut("cut mid-stream, as asked")
        if delay and n:
            time.sleep(delay)
        yield data[i:i + size]


@fake.route("POST", r"/v1/text-to-speech/([A-Za-z0-9]+)")
def convert(req, voice_id):
    body = check(req)
    data = audio()
    h = dict(HEADERS, **{"x-character-count": str(len(body["text"]))})
    if fake.config["cut_after"] is None:
        return 200, h, data
    # a Content-Length for all of it, then fewer bytes: cut
    h["Content-Length"] = str(len(data))
    return 200, h, pieces(data)


@fake.route("POST", r"/v1/text-to-speech/([A-Za-z0-9]+)/stream")
def stream(req, voice_id):
    body = check(req)
    h = dict(HEADERS, **{"x-character-count": str(len(body["text"]))})
    return 200, h, pieces(audio())


fake.error_body = lambda req, status, msg: ({}, {"detail": {
    "status": "system_busy" if status == 429 else "internal_error", "message": msg}})

if __name__ == "__main__":
    sys.exit(fake.main())
