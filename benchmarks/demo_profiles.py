"""Benchmark: the demo API's ``before`` and ``after`` profiles, and each optimization alone.

Seeds the default data set (20,000 products, 200,000 reviews; reused when already there),
serves each configuration with ``hlthz api serve`` in a subprocess on loopback, drives the same
deterministic request mix at it and prints the audit table: average, P95, error rate, database
queries per request and cache hit share per endpoint and overall, then one line per single
optimization (the ``before`` profile with only that switch on, served side by side with a
``before`` server that gets the same requests at the same time) with its share of the average
latency improvement.

Load: a closed loop of ``--concurrency`` threads, each with its own keep-alive httpx client,
sending a pre-generated request list (same list, same order, for every configuration). A closed
loop measures service latency without a load generator's own scheduling in the way, needs no
gevent (locust monkey-patches sockets), and bounds the run by a request count. Queries per
request come from the server's own ``http_request_database_queries`` histogram; cache hits from
its ``X-Cache`` response header.

    .venv/bin/python benchmarks/demo_profiles.py                 # full run, ~10 minutes
    .venv/bin/python benchmarks/demo_profiles.py --no-singles    # before/after only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hlthz.demo_api import OPTIMIZATIONS, seed
from hlthz.demo_api.seed import DEFAULT_PRODUCTS, DEFAULT_REVIEWS
from hlthz.demo_api.settings import SQLITE_FILE
from hlthz.procs import LOOPBACK, ManagedProcess, free_port, http_ok

#: Endpoint -> (share of the mix, route label in the server's metrics).
MIX: dict[str, tuple[float, str]] = {
    "GET /api/products": (0.37, "/api/products"),
    "GET /api/products/{id}": (0.38, "/api/products/{product_id}"),
    "GET /api/categories": (0.10, "/api/categories"),
    "POST /api/orders": (0.07, "/api/orders"),
    "GET /api/users/{id}/dashboard": (0.05, "/api/users/{user_id}/dashboard"),
    "PUT /api/products/{id}": (0.03, "/api/products/{product_id}"),
}
HOT_PRODUCTS = 300


@dataclass(frozen=True)
class Request:
    endpoint: str
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass
class Sample:
    endpoint: str
    seconds: float
    status: int
    cache: str | None


@dataclass
class RunResult:
    name: str
    samples: list[Sample]
    queries: dict[str, tuple[float, float]] = field(default_factory=dict)  # route -> (sum, count)
    wall: float = 0.0

    def by_endpoint(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = defaultdict(list)
        for sample in self.samples:
            out[sample.endpoint].append(sample)
        return out


def build_requests(
    n: int, slugs: Sequence[str], products: int, users: int, seed_: int = 7
) -> list[Request]:
    """``n`` requests drawn from :data:`MIX` with a fixed seed (the same list every run)."""
    rng = random.Random(seed_)
    endpoints = list(MIX)
    weights = [MIX[e][0] for e in endpoints]

    def product() -> int:
        # Shops have hot products: 80 % of views go to a few hundred items.
        return (
            rng.randrange(1, HOT_PRODUCTS + 1)
            if rng.random() < 0.8
            else rng.randrange(1, products + 1)
        )

    out = []
    for _ in range(n):
        endpoint = rng.choices(endpoints, weights)[0]
        if endpoint == "GET /api/products":
            page = rng.choices((1, 2, 3), (6, 3, 1))[0]
            query = f"page={page}&per_page=20"
            if rng.random() >= 0.15:
                query = f"category={rng.choice(slugs)}&" + query
            out.append(Request(endpoint, "GET", f"/api/products?{query}"))
        elif endpoint == "GET /api/products/{id}":
            out.append(Request(endpoint, "GET", f"/api/products/{product()}"))
        elif endpoint == "GET /api/categories":
            out.append(Request(endpoint, "GET", "/api/categories"))
        elif endpoint == "POST /api/orders":
            items = [
                {"product_id": product(), "quantity": rng.randrange(1, 3)}
                for _ in range(rng.randrange(1, 4))
            ]
            body = {"user_id": rng.randrange(1, users + 1), "items": items}
            out.append(Request(endpoint, "POST", "/api/orders", body))
        elif endpoint == "GET /api/users/{id}/dashboard":
            out.append(
                Request(endpoint, "GET", f"/api/users/{rng.randrange(1, users + 1)}/dashboard")
            )
        else:
            body = {"price_cents": rng.randrange(500, 100_000)}
            out.append(Request(endpoint, "PUT", f"/api/products/{product()}", body))
    return out


def drive(
    bases: Sequence[str], requests: list[Request], concurrency: int
) -> tuple[list[list[Sample]], float]:
    """Send each request to every server in ``bases`` (rotating who goes first), closed loop.

    Returns one sample list per server and the wall time. With two servers every request is a
    matched pair measured under the same machine conditions.
    """
    samples: list[list[Sample]] = [[] for _ in bases]
    lock = threading.Lock()
    stop = threading.Event()
    cursor = iter(enumerate(requests))

    def worker() -> None:
        clients = [
            httpx.Client(base_url=base, timeout=30, headers={"Accept-Encoding": "gzip"})
            for base in bases
        ]
        try:
            while True:
                with lock:
                    item = None if stop.is_set() else next(cursor, None)
                if item is None:
                    return
                index, request = item
                for k in range(len(bases)):
                    target = (index + k) % len(bases)
                    sample = _send(clients[target], request)
                    with lock:
                        samples[target].append(sample)
        finally:
            for client in clients:
                client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short waits keep Ctrl-C responsive
    except KeyboardInterrupt:
        stop.set()
        raise
    return samples, time.perf_counter() - started


def _send(client: httpx.Client, request: Request) -> Sample:
    started = time.perf_counter()
    try:
        response = client.request(request.method, request.path, json=request.body)
        response.read()
        status, cache = response.status_code, response.headers.get("x-cache")
    except httpx.HTTPError:
        status, cache = 0, None
    return Sample(request.endpoint, time.perf_counter() - started, status, cache)


def scrape_queries(base: str) -> dict[str, tuple[float, float]]:
    text = httpx.get(base + "/metrics", timeout=10).text
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for family in text_string_to_metric_families(text):
        if family.name != "http_request_database_queries":
            continue
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if sample.name.endswith("_sum"):
                out[route][0] += sample.value
            elif sample.name.endswith("_count"):
                out[route][1] += sample.value
    return {route: (v[0], v[1]) for route, v in out.items()}


@contextlib.contextmanager
def serving(name: str, profile: str, opts: Sequence[str], data_dir: Path) -> Iterator[str]:
    """``hlthz api serve`` in a subprocess on a free loopback port; yields its base URL."""
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "hlthz", "api", "serve", "--profile", profile,
            "--port", str(port), "--data-dir", str(data_dir)]  # fmt: skip
    for opt in opts:
        argv += ["--opt", opt]
    log = data_dir / f"bench-{name}.log"
    with ManagedProcess(
        name, argv, log_path=log, ready=lambda: http_ok(base + "/health"), ready_timeout=180
    ):
        # Warm-up: imports, first connections; the same for every configuration.
        drive([base], [Request("warm", "GET", "/health")] * 8, 2)
        yield base


def run_config(
    name: str,
    profile: str,
    opts: list[str],
    data_dir: Path,
    requests: list[Request],
    concurrency: int,
) -> RunResult:
    with serving(name, profile, opts, data_dir) as base:
        (samples,), wall = drive([base], requests, concurrency)
        queries = scrape_queries(base)
    return RunResult(name, samples, queries, wall)


def run_pair(
    name: str, opt: str, data_dirs: tuple[Path, Path], requests: list[Request], concurrency: int
) -> tuple[RunResult, RunResult]:
    """``before`` and ``before`` + ``opt`` side by side (own database copies), paired requests."""
    with (
        serving(f"base-{name}", "before", [], data_dirs[0]) as base,
        serving(name, "before", [opt], data_dirs[1]) as one,
    ):
        (base_samples, one_samples), wall = drive([base, one], requests, concurrency)
        results = (
            RunResult(f"base-{name}", base_samples, scrape_queries(base), wall),
            RunResult(name, one_samples, scrape_queries(one), wall),
        )
    return results


def copy_database(source: Path, target: Path) -> None:
    """Copy the SQLite data set (its WAL checkpointed first) into directory ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(source / SQLITE_FILE)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        (target / (SQLITE_FILE + suffix)).unlink(missing_ok=True)
    shutil.copyfile(source / SQLITE_FILE, target / SQLITE_FILE)


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def _stats(samples: list[Sample]) -> dict[str, float]:
    ms = [s.seconds * 1000 for s in samples]
    looked_up = [s for s in samples if s.cache]
    return {
        "n": len(samples),
        "avg_ms": statistics.fmean(ms) if ms else 0.0,
        "median_ms": statistics.median(ms) if ms else 0.0,
        "p95_ms": _p95(ms),
        "error_rate": sum(1 for s in samples if s.status == 0 or s.status >= 500)
        / max(1, len(samples)),
        "cache_hit_rate": (sum(1 for s in looked_up if s.cache == "hit") / len(looked_up))
        if looked_up
        else 0.0,
    }


def _queries(result: RunResult, routes: set[str]) -> float:
    total = sum(result.queries.get(r, (0.0, 0.0))[0] for r in routes)
    count = sum(result.queries.get(r, (0.0, 0.0))[1] for r in routes)
    return total / count if count else 0.0


def summarize(result: RunResult) -> dict[str, dict[str, float]]:
    out = {}
    for endpoint, samples in sorted(result.by_endpoint().items()):
        stats = _stats(samples)
        stats["queries_per_request"] = _queries(result, {MIX[endpoint][1]})
        out[endpoint] = stats
    overall = _stats(result.samples)
    overall["queries_per_request"] = _queries(result, {route for _, route in MIX.values()})
    overall["rps"] = len(result.samples) / result.wall if result.wall else 0.0
    out["overall"] = overall
    return out


def print_audit(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> None:
    header = (
        f"{'endpoint':<31}{'n':>5} {'avg ms (before -> after)':>26}"
        f" {'P95 ms (before -> after)':>26}"
        f"{'P95 x':>7} {'errors':>13} {'queries/req':>14} {'cache hit':>12}"
    )
    print(header)
    print("-" * len(header))
    for endpoint in [*sorted(k for k in before if k != "overall"), "overall"]:
        b, a = before[endpoint], after[endpoint]
        ratio = b["p95_ms"] / a["p95_ms"] if a["p95_ms"] else float("inf")
        print(
            f"{endpoint:<31}{int(b['n']):>5} {b['avg_ms']:>11.1f} -> {a['avg_ms']:>9.1f}"
            f" {b['p95_ms']:>11.1f} -> {a['p95_ms']:>9.1f}{ratio:>7.1f}"
            f" {b['error_rate']:>5.1%}/{a['error_rate']:>5.1%}"
            f" {b['queries_per_request']:>5.1f} -> {a['queries_per_request']:>4.1f}"
            f" {b['cache_hit_rate']:>4.0%}/{a['cache_hit_rate']:>4.0%}"
        )


def run_singles(
    subset: list[Request], data_dir: Path, concurrency: int
) -> dict[str, dict[str, float]]:
    """Each optimization alone on ``before``, paired with a ``before`` server request by request.

    The machine is shared and its speed drifts; two servers (each on its own copy of the
    database, since the ``indexes`` switch changes the schema) answer the same requests at the
    same time, so the drift hits both sides alike.
    """
    after = summarize(run_config("after-subset", "after", [], data_dir, subset, concurrency))
    with tempfile.TemporaryDirectory(prefix="hlthz-bench-") as tmp:
        copy_dir = Path(tmp)
        copy_database(data_dir, copy_dir)
        return _print_singles(subset, after, (data_dir, copy_dir), concurrency)


def _typical_saving(
    base: dict[str, dict[str, float]], other: dict[str, dict[str, float]], endpoint: str
) -> float:
    """Median ms saved on ``endpoint``, times its share of all requests: ms saved per request."""
    total = base["overall"]["n"]
    share = base[endpoint]["n"] / total if total else 0.0
    return (base[endpoint]["median_ms"] - other[endpoint]["median_ms"]) * share


def _print_singles(
    subset: list[Request],
    after: dict[str, dict[str, float]],
    data_dirs: tuple[Path, Path],
    concurrency: int,
) -> dict[str, dict[str, float]]:
    print(
        f"\nsingle optimizations: before + one switch, paired request by request with a before "
        f"server (first {len(subset)} requests of the mix)"
    )
    print(
        f"{'optimization':<20}{'before avg':>11}{'with it':>9}{'P95 ms':>9}{'saved/req':>11}"
        f"{'share of gain':>15}  most saved on"
    )
    singles: dict[str, dict[str, float]] = {}
    for name in OPTIMIZATIONS:
        base_run, one_run = run_pair(name, f"{name}=on", data_dirs, subset, concurrency)
        base, one = summarize(base_run), summarize(one_run)
        # Per endpoint medians weighted by the mix: robust to the few slow outliers a shared
        # machine adds, which would otherwise drown small savings (7 % of requests are orders).
        saving = {e: _typical_saving(base, one, e) for e in base if e != "overall" and e in one}
        gain = sum(_typical_saving(base, after, e) for e in base if e != "overall" and e in after)
        saved = sum(saving.values())
        share = saved / gain if gain else 0.0
        top = max(saving, key=lambda e: saving[e])
        singles[name] = {
            **one["overall"],
            "baseline_avg_ms": base["overall"]["avg_ms"],
            "saved_ms_per_request": saved,
            "share_of_gain": share,
        }
        print(
            f"{name:<20}{base['overall']['avg_ms']:>11.1f}{one['overall']['avg_ms']:>9.1f}"
            f"{one['overall']['p95_ms']:>9.1f}{saved:>11.1f}{share:>15.0%}  {top} "
            f"(median {base[top]['median_ms']:.0f} -> {one[top]['median_ms']:.0f} ms)"
        )
    print("(shares need not add up to 100 %: fixes overlap, e.g. indexes alone speed up the N+1)")
    return singles


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".hlthz/data"))
    parser.add_argument("--products", type=int, default=DEFAULT_PRODUCTS)
    parser.add_argument("--reviews", type=int, default=DEFAULT_REVIEWS)
    parser.add_argument("--requests", type=int, default=400, help="Requests per profile run.")
    parser.add_argument(
        "--single-requests", type=int, default=120, help="Requests per single-optimization run."
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--no-singles", action="store_true", help="Skip the single-optimization lines."
    )
    parser.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    args = parser.parse_args(argv)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(args.data_dir / 'demo.sqlite3').resolve()}"
    seeded = seed(url, products=args.products, reviews=args.reviews, reuse=True)
    print(f"data: {seeded.products} products, {seeded.reviews} reviews "
          f"({'reused' if seeded.reused else f'seeded in {seeded.seconds:.1f} s'})")  # fmt: skip
    from hlthz.demo_api.seed import CATEGORY_NAMES

    slugs = [name.lower() for name in CATEGORY_NAMES[: seeded.categories]]
    requests = build_requests(args.requests, slugs, seeded.products, seeded.users)
    print(
        f"load: {args.requests} requests per profile, "
        f"{args.concurrency} closed-loop clients, loopback\n"
    )

    results = {}
    for profile in ("before", "after"):
        run = run_config(profile, profile, [], args.data_dir, requests, args.concurrency)
        results[profile] = summarize(run)
        print(f"  {profile}: {len(run.samples)} requests in {run.wall:.1f} s")
    print()
    print_audit(results["before"], results["after"])

    singles: dict[str, dict[str, float]] = {}
    if not args.no_singles:
        singles = run_singles(requests[: args.single_requests], args.data_dir, args.concurrency)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**results, "singles": singles}, indent=2))
    b, a = results["before"], results["after"]
    targets = {
        "listing P95 >= 10x lower": b["GET /api/products"]["p95_ms"]
        >= 10 * a["GET /api/products"]["p95_ms"],
        "order POST P95 >= 800 ms before": b["POST /api/orders"]["p95_ms"] >= 800,
        "order POST P95 < 50 ms after": a["POST /api/orders"]["p95_ms"] < 50,
        "overall P95 ratio >= 10x": b["overall"]["p95_ms"] >= 10 * a["overall"]["p95_ms"],
    }
    print("\ntargets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
