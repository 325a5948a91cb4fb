"""A loopback target with a known delay, run as ``python -m tests.replay.target_app PORT``.

``GET /delay/{ms}`` answers after ``ms`` milliseconds (asyncio sleep, so concurrent requests do
not queue); ``POST /stall?seconds=S`` makes every request that *arrives* in the next S seconds
wait until the stall ends (a frozen server); ``GET /json/{n}`` returns a JSON body with a
stable part and a random ``request_id`` (``price`` is one higher when the environment has
``TARGET_VARIANT=1``: a planted difference); ``GET /flaky`` returns 503; ``GET /count`` the
requests served so far by method, and the ``Authorization`` and ``Host`` values seen.
``TARGET_SLOW=F`` in the environment multiplies every ``/delay/`` wait by F (a planted
slowdown).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

_served: Counter[str] = Counter()
_stall_until = 0.0
_seen: dict[str, list[str]] = {"authorization": [], "host": []}
_VARIANT = int(os.environ.get("TARGET_VARIANT", "0"))
_SLOW = float(os.environ.get("TARGET_SLOW", "1"))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _stall_until
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    query = scope.get("query_string", b"").decode()
    now = time.monotonic()
    if _stall_until > now and not path.startswith("/count"):
        await asyncio.sleep(_stall_until - now)
    status, body, ctype = 200, b"ok", "text/plain"
    if path.startswith("/delay/"):
        await asyncio.sleep(int(path.rsplit("/", 1)[1]) * _SLOW / 1000)
    elif path == "/stall":
        seconds = float(query.partition("=")[2] or 1)
        _stall_until = time.monotonic() + seconds
    elif path.startswith("/json/"):
        n = int(path.rsplit("/", 1)[1])
        payload = {
            "id": n,
            "name": f"item-{n}",
            "price": n * 10 + _VARIANT,
            "request_id": str(uuid.uuid4()),
        }
        body, ctype = json.dumps(payload).encode(), "application/json"
    elif path == "/flaky":
        status = 503
    elif path == "/count":
        body, ctype = json.dumps({"methods": _served, **_seen}).encode(), "application/json"
    if path != "/count":
        _served[method] += 1
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key in _seen and value.decode("latin-1") not in _seen[key]:
                _seen[key].append(value.decode("latin-1"))
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import uvicorn

    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"  # another only in a test's netns
    uvicorn.run(app, host=host, port=int(sys.argv[1]), log_level="warning", access_log=False)
