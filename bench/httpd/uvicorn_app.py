"""FastAPI baseline for bench/httpd/run: the endpoint equivalent to
unde-httpd's trivial filter route. It echoes the JSON object with
"seen": true and a request_id (from X-Request-Id or new), and answers
X-Request-Id, as unde-httpd + libtest's demo filter do."""
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/echo")
async def echo(request: Request):
    body = await request.json()
    if not isinstance(body, dict):
        return JSONResponse({"error": {"code": "invalid_body",
                                       "message": "body must be a JSON object"}},
                            status_code=400)
    rid = request.headers.get("x-request-id") or str(uuid.uuid4())
    body["request_id"] = rid
    body["seen"] = True
    return JSONResponse(body, headers={"X-Request-Id": rid})
