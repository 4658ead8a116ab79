#!/usr/bin/env python3
"""cohere — fake Cohere Embed API (v1 and v2): POST /v1/embed, /v2/embed.

Wire format as in ../../../shared/upstreams.md §5: Bearer auth, at most 96
texts per call, input_type required for v3 models, embedding_types
["float"] answered as {"response_type":"embeddings_by_type",
"embeddings":{"float":[...]}}; v1 without embedding_types answers
{"response_type":"embeddings_floats","embeddings":[...]}. Errors are
{"message": ...}. Each text's vector is deterministic, seeded by the model
and the text (not input_type, so a query equal to a stored text finds it at
cosine 1), and of unit length.

Config knobs (POST /_fake/config):
  dim      the dimension answered (default 1024; anything else tests a
           provider answering the wrong dimension)
  short    answer one embedding fewer than texts were sent (garbage)
  key      the accepted API key (default "test-key")
"""
import hashlib
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

MODELS = {"embed-multilingual-v3.0", "embed-multilingual-v3", "embed-english-v3.0",
          "embed-multilingual-light-v3.0", "embed-v4.0"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}

fake = Fake("cohere", config={"dim": 1024, "short": False, "key": "test-key"})


def vector(model, text, dim):
    seed = hashlib.sha256(f"{model}|{text}".encode()).digest()
    rng = random.Random(seed)
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 6) for x in v]


def embed(req, version):
    if req.bearer() != fake.config["key"]:
        raise Abort(401, {"message": "invalid api token"})
    body = req.json()
    if not isinstance(body, dict):
        raise Abort(400, {"message": "invalid request: body must be an object"})
    model, texts = body.get("model"), body.get("texts")
    if model not in MODELS:
        raise Abort(404, {"message": f"model '{model}' not found, make sure the correct model ID was used"})
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Abort(400, {"message": "invalid request: texts must be a non-empty list of strings"})
    if len(texts) > 96:
        raise Abort(400, {"message": f"invalid request: texts can only have up to 96 elements, but got {len(texts)}"})
    it = body.get("input_type")
    if it not in INPUT_TYPES:
        raise Abort(400, {"message": "invalid request: valid input_type must be provided with the provided model"})
    types = body.get("embedding_types")
    if version == 2 and types is None:
        raise Abort(400, {"message": "invalid request: embedding_types is required"})
    dim = int(fake.config["dim"])
    vecs = [vector(model, t, dim) for t in texts]
    if fake.config["short"]:
        vecs = vecs[:-1]
    with fake.lock:
        fake.state["texts"] = fake.state.get("texts", 0) + len(texts)
    meta = {"api_version": {"version": str(version)}, "billed_units": {"input_tokens": sum(len(t.split()) for t in texts)}}
    if types is None:
        return {"response_type": "embeddings_floats", "id": "fake", "embeddings": vecs, "texts": texts, "meta": meta}
    if "float" not in types:
        raise Abort(400, {"message": "invalid request: only float embeddings are served by this fake"})
    return {"response_type": "embeddings_by_type", "id": "fake", "embeddings": {"float": vecs},
            "texts": texts, "meta": meta}


@fake.route("POST", r"/v1/embed")
def embed_v1(req):
    return embed(req, 1)


@fake.route("POST", r"/v2/embed")
def embed_v2(req):
    return embed(req, 2)


fake.error_body = lambda req, status, msg: ({}, {"message": msg})

if __name__ == "__main__":
    sys.exit(fake.main())
