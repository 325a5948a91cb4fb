"""What recording costs: middleware microseconds per request, proxy latency added.

    .venv/bin/python benchmarks/capture_overhead.py [--requests N] [--seconds S] [--rps R]

Part 1 (in-process): a minimal WSGI app and a minimal ASGI app are called directly, without a
server, with and without the recording middleware at 100 % sampling, in alternating rounds (a
GET with a bearer token; and for WSGI also a 1 KiB JSON POST full of secrets); the
difference of the best rounds (as timeit does: the least disturbed by other processes) is the
time the middleware adds to a request. The writer thread sleeps meanwhile; its own work per
record (build, redact, serialize, write: CPU a server spends off the request path) is timed
separately in the last column.

Part 2 (loopback): a paced client sends R requests/s for S seconds to a uvicorn upstream, first
directly, then through ``hlthz replay record``; the table shows latency P50/P99 and what the
proxy adds. Target (docs/capture.md, What it costs): middleware < 15 us per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.procs import free_port, port_open, wait_until
from hlthz.replay import recording

ROOT = Path(__file__).resolve().parent.parent


# -- part 1: in-process middleware cost ----------------------------------------------------------


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/products/42",
        "QUERY_STRING": "page=2",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": "Bearer abc.def.ghi",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }


def _time_wsgi(app: Callable[..., Any], n: int) -> float:
    base = _environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    t0 = time.perf_counter_ns()
    for _ in range(n):
        result = app(base.copy(), start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter_ns() - t0) / n / 1000


# A checkout as a shop's client sends it: about 1 KiB of JSON holding a password, a card
# number, a JWT and a nested JSON string, so the writer column shows the full policy at work.
_ORDER = json.dumps(
    {
        "user": {"email": "ada@example.com", "password": "hunter2-p4ss"},
        "payment": {"card_number": "4111 1111 1111 1111", "cvv": "737", "holder": "Ada L."},
        "items": [
            {"sku": f"SKU-{n:04d}", "qty": n % 3 + 1, "note": "gift wrap"} for n in range(12)
        ],
        "session": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        "meta": json.dumps({"referrer": "newsletter", "token": "t-123456"}),
    }
).encode()


def _time_wsgi_post(app: Callable[..., Any], n: int) -> float:
    base = _environ()
    base.update(
        REQUEST_METHOD="POST",
        PATH_INFO="/api/orders",
        QUERY_STRING="",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(_ORDER)),
    )

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    t0 = time.perf_counter_ns()
    for _ in range(n):
        environ = base.copy()
        environ["wsgi.input"] = io.BytesIO(_ORDER)
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter_ns() - t0) / n / 1000


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _time_asgi(app: Any, n: int) -> float:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/products/42",
        "raw_path": b"/api/products/42",
        "query_string": b"page=2",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench/1.0"),
            (b"authorization", b"Bearer abc.def.ghi"),
        ],
    }
    message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: dict[str, Any]) -> None:
        return None

    async def run() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.perf_counter_ns() - t0) / n / 1000

    return asyncio.run(run())


def _middleware_rows(n: int, rounds: int, tmp: Path) -> list[tuple[str, float, float, float]]:
    """(app, bare us/req, recorded us/req, writer us/record) for WSGI and ASGI."""
    rows = []
    for kind, timer, bare in (
        ("WSGI", _time_wsgi, _wsgi_app),
        ("ASGI", _time_asgi, _asgi_app),
        ("WSGI POST", _time_wsgi_post, _wsgi_app),
    ):
        # The writer thread sleeps through the timed rounds: what is timed is the request path.
        wrapped = recording(
            bare,
            tmp / f"{kind.replace(' ', '-')}.jsonl",
            registry=CollectorRegistry(),
            queue_size=n + 10,
            flush_interval=3600.0,
            kind=kind.split()[0].lower(),
        )
        recorder = wrapped.recorder
        base_times, rec_times, writer_times = [], [], []
        for _ in range(rounds):
            base_times.append(timer(bare, n))
            rec_times.append(timer(wrapped, n))
            # Then the writer's work for those n requests (build, redact, serialize, write),
            # run here while its thread sleeps: CPU a server spends off the request path.
            queued = len(recorder)
            t0 = time.perf_counter_ns()
            recorder._drain()
            writer_times.append((time.perf_counter_ns() - t0) / max(queued, 1) / 1000)
        wrapped.close()
        rows.append((kind, min(base_times), min(rec_times), min(writer_times)))
    return rows


# -- part 2: proxy latency on loopback -----------------------------------------------------------

_UPSTREAM = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            k = m["type"].split(".")[1]
            await send({"type": f"lifespan.{k}.complete"})
            if k == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, http="h11")
"""


@contextlib.contextmanager
def _process(argv: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT
    )
    try:
        wait_until(lambda: port_open(port), timeout=30, what=argv[0])
        yield
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _paced_latencies(port: int, rps: float, seconds: float, threads: int = 4) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mine: list[float] = []
        interval = threads / rps
        start = time.monotonic()
        i = 0
        try:
            while True:
                due = start + i * interval
                if due - start >= seconds:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                sock.sendall(b"GET /bench HTTP/1.1\r\nHost: b\r\n\r\n")
                data = b""
                while not data.endswith(b"ok"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
                mine.append((time.perf_counter() - t0) * 1000)
                i += 1
        finally:
            sock.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 60)
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2_000, help="calls per round (part 1)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (part 2)")
    parser.add_argument("--rps", type=float, default=500.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
        rounds = f"{args.requests} calls x {args.rounds} rounds"
        print(f"\nmiddleware, in-process, 100 % sampling ({rounds})")
        header = f"{'app':<10}{'bare us/req':>13}{'recorded us/req':>17}{'added us':>10}"
        print(header + f"{'ratio':>8}{'writer us/record':>18}")
        for name, bare, rec, writer in _middleware_rows(args.requests, args.rounds, tmp):
            print(
                f"{name:<10}{bare:>13.2f}{rec:>17.2f}{rec - bare:>10.2f}{rec / bare:>8.2f}"
                f"{writer:>18.2f}"
            )

        up_port, proxy_port = free_port(), free_port()
        upstream = [sys.executable, "-c", _UPSTREAM, str(up_port)]
        proxy = [
            sys.executable,
            "-m",
            "hlthz",
            "replay",
            "record",
            "--no-progress",
            "--listen",
            f"127.0.0.1:{proxy_port}",
            "--upstream",
            f"http://127.0.0.1:{up_port}",
            "--out",
            str(tmp / "proxy.jsonl"),
        ]
        with _process(upstream, up_port):
            direct = _paced_latencies(up_port, args.rps, args.seconds)
            with _process(proxy, proxy_port):
                proxied = _paced_latencies(proxy_port, args.rps, args.seconds)
        print(f"\nproxy on loopback, {args.rps:.0f} req/s paced for {args.seconds:.0f} s each")
        print(f"{'path':<22}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}")
        for name, values in (("direct", direct), ("via hlthz record", proxied)):
            print(f"{name:<22}{len(values):>10}{_pct(values, 0.5):>9.3f}{_pct(values, 0.99):>9.3f}")
        print(
            f"{'added by proxy':<22}{'':>10}{_pct(proxied, 0.5) - _pct(direct, 0.5):>9.3f}"
            f"{_pct(proxied, 0.99) - _pct(direct, 0.99):>9.3f}"
        )


if __name__ == "__main__":
    main()
