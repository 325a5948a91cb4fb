"""Per-request cost of HLTHZ's middleware next to its peers, apps called in-process.

For each framework (Flask, Starlette, FastAPI) the same one-route app is built bare, with
``hlthz.exporter.instrument`` (the full default metric set: duration histogram, in-flight
gauge, queries-per-request histogram, N+1 bookkeeping), and with each peer library in its
default configuration. No sockets: WSGI apps are called with an environ and their response
iterable is drained and closed as a server would; ASGI apps are awaited on one event loop.

The machine drifts (other processes, CPU frequency), so variants are interleaved round by
round in a shuffled order, and the overhead of a variant is the median over rounds of
(variant - bare) measured in the same round. Run::

    .venv/bin/python benchmarks/exporter_overhead.py            # ~1 minute
    .venv/bin/python benchmarks/exporter_overhead.py --quick    # ~10 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

Runner = Callable[[int], float]  # runs n requests, returns seconds


# -- WSGI ---------------------------------------------------------------------------------------


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _wsgi_runner(app: Any) -> Runner:
    paths = [f"/items/{i}" for i in range(16)]
    templates = [_environ(path) for path in paths]
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(s)
        return None

    def run(n: int) -> float:
        status.clear()
        started = time.perf_counter()
        for i in range(n):
            environ = templates[i & 15].copy()
            result = app(environ, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        elapsed = time.perf_counter() - started
        if status[-1][:3] != "200":
            raise SystemExit(f"benchmark app answered {status[-1]}")
        return elapsed

    return run


def flask_variants() -> dict[str, Runner]:
    import flask

    def build() -> flask.Flask:
        app = flask.Flask("bench")

        @app.get("/items/<int:item_id>")
        def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        return app

    from hlthz.exporter import instrument

    hlthz_app = instrument(build(), registry=CollectorRegistry())
    from prometheus_flask_exporter import PrometheusMetrics

    peer_app = build()
    PrometheusMetrics(peer_app, registry=CollectorRegistry())
    return {
        "bare": _wsgi_runner(build()),
        "hlthz": _wsgi_runner(hlthz_app),
        "prometheus-flask-exporter": _wsgi_runner(peer_app),
    }


# -- ASGI ---------------------------------------------------------------------------------------


def _asgi_runner(app: Any, loop: asyncio.AbstractEventLoop) -> Runner:
    scopes = []
    for i in range(16):
        path = f"/items/{i}"
        scopes.append(
            {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
        )
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def batch(n: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            await app(dict(scopes[i & 15]), receive, send)
        return time.perf_counter() - started

    def run(n: int) -> float:
        statuses.clear()
        elapsed = loop.run_until_complete(batch(n))
        if statuses[-1] != 200:
            raise SystemExit(f"benchmark app answered {statuses[-1]}")
        return elapsed

    return run


def starlette_variants(loop: asyncio.AbstractEventLoop) -> dict[str, Runner]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": int(request.path_params["item_id"])})

    def build() -> Starlette:
        return Starlette(routes=[Route("/items/{item_id:int}", item)])

    from hlthz.exporter import instrument

    hlthz_app = instrument(build(), registry=CollectorRegistry())
    from starlette_exporter import PrometheusMiddleware

    peer = build()
    peer.add_middleware(PrometheusMiddleware, prefix="bench_starlette")
    return {
        "bare": _asgi_runner(build(), loop),
        "hlthz": _asgi_runner(hlthz_app, loop),
        "starlette_exporter": _asgi_runner(peer, loop),
    }


def fastapi_variants(loop: asyncio.AbstractEventLoop) -> dict[str, Runner]:
    from fastapi import FastAPI

    def build() -> FastAPI:
        app = FastAPI()

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        return app

    from hlthz.exporter import instrument

    hlthz_app = instrument(build(), registry=CollectorRegistry())
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette_exporter import PrometheusMiddleware

    exporter_app = build()
    exporter_app.add_middleware(PrometheusMiddleware, prefix="bench_fastapi")
    instrumentator_app = build()
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator_app)
    return {
        "bare": _asgi_runner(build(), loop),
        "hlthz": _asgi_runner(hlthz_app, loop),
        "starlette_exporter": _asgi_runner(exporter_app, loop),
        "prometheus-fastapi-instrumentator": _asgi_runner(instrumentator_app, loop),
    }


# -- measurement --------------------------------------------------------------------------------


def measure(variants: dict[str, Runner], rounds: int, requests: int, seed: int) -> dict[str, Any]:
    """Median µs/request per variant and median overhead vs bare over interleaved rounds."""
    rng = random.Random(seed)
    for run in variants.values():  # warm-up: first-request set-up, caches, route indexes
        run(max(200, requests // 10))
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            gc.collect()
            per_round[name].append(variants[name](requests) / requests * 1e6)
    bare = per_round["bare"]
    return {
        name: {
            "us": statistics.median(samples),
            "overhead": statistics.median(s - b for s, b in zip(samples, bare, strict=True)),
        }
        for name, samples in per_round.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant a round")
    parser.add_argument("--quick", action="store_true", help="5 rounds of 500 requests")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rounds, requests = (5, 500) if args.quick else (args.rounds, args.requests)

    loop = asyncio.new_event_loop()
    frameworks = {
        "Flask": flask_variants(),
        "Starlette": starlette_variants(loop),
        "FastAPI": fastapi_variants(loop),
    }
    command = "python benchmarks/exporter_overhead.py " + " ".join(argv or sys.argv[1:])
    print(f"# {command.strip()}  ({rounds} rounds x {requests} requests, in-process)")
    header = (
        f"{'framework':<10} {'variant':<34} {'us/req':>8} {'overhead us':>12} {'hlthz/peer':>11}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for framework, variants in frameworks.items():
        results = measure(variants, rounds, requests, args.seed)
        ours = results["hlthz"]["overhead"]
        peers = {n: r["overhead"] for n, r in results.items() if n not in ("bare", "hlthz")}
        fastest = min(peers.values())
        for name, result in results.items():
            ratio = ""
            if name == "hlthz":
                ratio = f"{ours / fastest:.2f}" if fastest > 0 else "n/a"
            elif name != "bare":
                ratio = f"{ours / result['overhead']:.2f}" if result["overhead"] > 0 else "n/a"
            print(
                f"{framework:<10} {name:<34} {result['us']:>8.1f} "
                f"{result['overhead'] if name != 'bare' else 0.0:>12.1f} {ratio:>11}"
            )
        target = fastest / 3
        verdict = "meets" if ours <= target else "MISSES"
        ok = ok and ours <= target
        print(f"{'':<10} target: hlthz overhead <= {target:.1f} us (fastest peer / 3): {verdict}")
    loop.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
