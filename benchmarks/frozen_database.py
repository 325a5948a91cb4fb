"""Benchmark: how long a request waits when the demo API's PostgreSQL server freezes.

Starts a throw-away PostgreSQL on loopback, seeds it, serves the ``after`` profile in process
(Starlette's TestClient), warms the pool, then SIGSTOPs the postmaster and every backend and
times one request per round: on a connection the pool already holds, and on a new connection.
Side by side: the freeze watch on (the default) and off (what libpq and psycopg do alone, cut
at ``--cap`` seconds: they would wait for ever). Medians of ``--rounds`` rounds.

    .venv/bin/python benchmarks/frozen_database.py            # ~1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from hlthz.demo_api import Settings, create_app, seed
from hlthz.demo_api.seed import SMALL_PRODUCTS, SMALL_REVIEWS
from hlthz.tools.stack import services


def _processes(postmaster: int) -> list[int]:
    found = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                found.append(int(stat.parent.name))
    return found


def _timed_get(client: TestClient, path: str, cap: float) -> tuple[float, int | None]:
    result: dict[str, int] = {}

    def call() -> None:
        with contextlib.suppress(Exception):
            result["status"] = client.get(path).status_code

    started = time.monotonic()
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(cap)
    return time.monotonic() - started, result.get("status")


def _round(
    url: str, postmaster: int, watch: bool, cap: float
) -> tuple[float, int | None, float, int | None]:
    settings = Settings.for_profile("after", db_url=url)
    app = create_app(settings, registry=CollectorRegistry())
    with TestClient(app) as client, contextlib.ExitStack() as stack:
        if not watch:
            db = app.state.shop.db
            assert db.freeze_watch is not None
            db.freeze_watch.stop()
            db.freeze_watch = None
        assert client.get("/api/products/1").status_code == 200
        frozen = _processes(postmaster)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        stack.callback(lambda: [os.kill(pid, signal.SIGCONT) for pid in frozen])
        pooled = _timed_get(client, "/api/products/2", cap)
        # Every pooled connection is gone now (cut, or still hung): the next one is new.
        app.state.shop.db.engine.pool.dispose()
        fresh = _timed_get(client, "/api/products/3", cap)
    return (*pooled, *fresh)


def _statuses(codes: set[int | None]) -> str:
    return "hung" if codes == {None} else "/".join(sorted(str(c) for c in codes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cap", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, services.start_postgres(Path(tmp)) as server:
        time.sleep(1.0)
        seed(server.url, products=SMALL_PRODUCTS, reviews=SMALL_REVIEWS)
        rows = {}
        for watch in (True, False):
            runs = [_round(server.url, server.pid, watch, args.cap) for _ in range(args.rounds)]
            rows[watch] = runs
    load = os.getloadavg()[0]
    print(
        f"# python benchmarks/frozen_database.py --rounds {args.rounds} (load average {load:.2f})"
    )
    print(f"{'freeze watch':<14}{'pooled conn s':>15}{'status':>8}{'new conn s':>13}{'status':>8}")
    for watch, runs in rows.items():
        pooled = statistics.median(r[0] for r in runs)
        fresh = statistics.median(r[2] for r in runs)
        print(
            f"{'on' if watch else 'off':<14}{pooled:>15.2f}{_statuses({r[1] for r in runs}):>8}"
            f"{fresh:>13.2f}{_statuses({r[3] for r in runs}):>8}"
        )
    print(f"(off: requests still waiting after --cap {args.cap:g} s are shown as hung)")


if __name__ == "__main__":
    main()
