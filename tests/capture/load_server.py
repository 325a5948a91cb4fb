"""The server of the load test: a minimal ASGI app behind the recording middleware, on uvicorn.

    python load_server.py PORT CAPTURE

``/metrics`` (not recorded) exposes the recorder's counters so the test can read the drops.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest

from hlthz.replay import recording

registry = CollectorRegistry()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = generate_latest(registry) if scope["path"] == "/metrics" else b"ok"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    recorded = recording(app, out, registry=registry)
    uvicorn.run(
        recorded,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        http="h11",
        loop="asyncio",
        backlog=1024,
    )


if __name__ == "__main__":
    main()
