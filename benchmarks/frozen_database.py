"""Benchmark: how long a request waits when the demo API's PostgreSQL server freezes.

Starts a throw-away PostgreSQL on loopback and seeds it; each round serves the ``after`` profile
in a child process (Starlette's TestClient), warms the pool, SIGSTOPs the postmaster and every
backend and times two requests: one on a connection the pool already holds, then one that needs
a new connection. Side by side: the freeze watch on (the default) and off (libpq and psycopg
alone: they wait for ever; a request still waiting after ``--cap`` seconds is shown as hung).
Each round runs in its own process, which the parent ends, so a hung request costs nothing
afterwards. Medians of ``--rounds`` rounds.

    .venv/bin/python benchmarks/frozen_database.py            # about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _processes(postmaster: int) -> list[int]:
    found = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                found.append(int(stat.parent.name))
    return found


def _timed_get(client: Any, path: str, cap: float) -> tuple[float, int | None]:
    result: dict[str, int] = {}

    def call() -> None:
        with contextlib.suppress(Exception):
            result["status"] = client.get(path).status_code

    started = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(cap)
    return time.monotonic() - started, result.get("status")


def _child(url: str, postmaster: int, watch: bool, cap: float) -> None:
    """One round, printed as JSON; the process ends without cleaning up (a hung request)."""
    from prometheus_client import CollectorRegistry
    from starlette.testclient import TestClient

    from hlthz.demo_api import Settings, create_app

    app = create_app(Settings.for_profile("after", db_url=url), registry=CollectorRegistry())
    with TestClient(app) as client:
        db = app.state.shop.db
        if not watch:
            db.freeze_watch.stop()
            db.freeze_watch = None
        assert client.get("/api/products/1").status_code == 200
        for pid in _processes(postmaster):
            os.kill(pid, signal.SIGSTOP)
        pooled = _timed_get(client, "/api/products/2", cap)
        db.engine.pool.dispose()  # the next request needs a new connection
        fresh = _timed_get(client, "/api/products/3", cap)
        print(json.dumps([*pooled, *fresh]), flush=True)
        os._exit(0)


def _round(url: str, postmaster: int, watch: bool, cap: float) -> list[Any]:
    argv = [sys.executable, __file__, "--child", "on" if watch else "off", "--url", url]
    argv += ["--postmaster", str(postmaster), "--cap", str(cap)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=4 * cap + 60)
    finally:
        for pid in _processes(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    if done.returncode != 0:
        raise SystemExit(f"round failed: {done.stderr.strip()[-2000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _statuses(codes: set[int | None]) -> str:
    return "hung" if codes == {None} else "/".join(sorted(str(c) for c in codes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cap", type=float, default=10.0)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--postmaster", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.url, args.postmaster, args.child == "on", args.cap)
        return

    from hlthz.demo_api import seed
    from hlthz.demo_api.seed import SMALL_PRODUCTS, SMALL_REVIEWS
    from hlthz.procs import wait_until
    from hlthz.tools.stack import services

    rows: dict[bool, list[list[Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, services.start_postgres(Path(tmp)) as server:
        wait_until(lambda: _seeded(server.url, seed, SMALL_PRODUCTS, SMALL_REVIEWS), timeout=60)
        for watch in (True, False):
            rows[watch] = [
                _round(server.url, server.pid, watch, args.cap) for _ in range(args.rounds)
            ]
    load = os.getloadavg()[0]
    print(f"# benchmarks/frozen_database.py --rounds {args.rounds} (load average {load:.2f})")
    print(f"{'freeze watch':<14}{'pooled conn s':>15}{'status':>8}{'new conn s':>13}{'status':>8}")
    for watch, runs in rows.items():
        pooled = statistics.median(r[0] for r in runs)
        fresh = statistics.median(r[2] for r in runs)
        print(
            f"{'on' if watch else 'off':<14}{pooled:>15.2f}{_statuses({r[1] for r in runs}):>8}"
            f"{fresh:>13.2f}{_statuses({r[3] for r in runs}):>8}"
        )
    print(f"(hung: still waiting after --cap {args.cap:g} s)")


def _seeded(url: str, seed: Any, products: int, reviews: int) -> bool:
    seed(url, products=products, reviews=reviews, reuse=True)
    return True


if __name__ == "__main__":
    main()
