"""What the recording rules save: samples read per evaluation of the z-score traffic alert.

    .venv/bin/python benchmarks/alerts_rule_cost.py [--jobs N] [--routes N] [--window 1d]

A real Prometheus is loaded (``promtool tsdb create-blocks-from openmetrics``) with ``--window``
plus one hour of synthetic request counters, ``http_request_duration_seconds_count`` for N jobs x
N routes x 2 status codes at a 15 s scrape interval, and with the series the generated recording
rules would have written from them: ``job:http_requests:rate5m`` every 15 s and the baseline
group's mean and standard deviation every 2 m. Then the ``UnusualTrafficPattern`` condition is
queried three ways, each several times, with ``stats=all``:

- inline: no recording rules, a subquery recomputes the per-job rate over the whole window;
- recorded rate: the per-job rate is recorded, the window statistics are computed per evaluation;
- hlthz: what the generated rules do, the alert reads the recorded statistics, and the baseline
  group (evaluated 8x less often) pays for them: its cost is amortized per 15 s evaluation.

The table shows samples read (Prometheus' own ``totalQueryableSamples``, which leaves out most of
what a subquery reads; the note under the table gives that number) and the median query time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hlthz.alerts.config import parse_duration
from hlthz.tools.stack.services import backfill_openmetrics, start_prometheus

STEP = 15  # scrape and rule evaluation interval, seconds
BASELINE_STEP = 120  # the generated baseline group's interval for the default config
RATE_WINDOW = 300


def _rate(job: int, route: int, t: int) -> float:
    """Requests/s of one series at time t: a daily wave plus a per-route level."""
    return (1 + route % 5) * (1.5 + math.sin(2 * math.pi * t / 86400 + job))


def _openmetrics(jobs: int, routes: int, start: int, end: int, window: int) -> Iterator[str]:
    name = "http_request_duration_seconds_count"
    # "unknown": an OpenMetrics counter family would add a _total suffix to the series name.
    yield f"# TYPE {name} unknown\n"
    per_job_rate: dict[tuple[int, int], float] = {}
    for job in range(jobs):
        for route in range(routes):
            for status, share in (("200", 0.99), ("500", 0.01)):
                total = 0.0
                labels = f'job="api{job}",route="/r{route}",status_code="{status}"'
                for t in range(start, end + 1, STEP):
                    total += _rate(job, route, t) * share * STEP
                    yield f"{name}{{{labels}}} {total:.3f} {t}\n"
            for t in range(start, end + 1, STEP):
                per_job_rate[(job, t)] = per_job_rate.get((job, t), 0.0) + _rate(job, route, t)
    # What the recording rules would have written.
    yield "# TYPE job:http_requests:rate5m gauge\n"
    for job in range(jobs):
        for t in range(start + RATE_WINDOW, end + 1, STEP):
            yield f'job:http_requests:rate5m{{job="api{job}"}} {per_job_rate[(job, t)]:.6f} {t}\n'
    for stat in ("avg", "stddev"):
        metric = f"job:http_requests:rate5m_{stat}1d"
        yield f"# TYPE {metric} gauge\n"
        for job in range(jobs):
            for t in range(start + window, end + 1, BASELINE_STEP):
                yield f'{metric}{{job="api{job}"}} 1 {t}\n'
    yield "# EOF\n"


def _query(url: str, expr: str, at: int) -> tuple[int, float]:
    query = urllib.parse.urlencode({"query": expr, "time": str(at), "stats": "all"})
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=120) as response:
        body: dict[str, Any] = json.load(response)
    elapsed = time.perf_counter() - started
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {body}")
    samples = int(body["data"]["stats"]["samples"]["totalQueryableSamples"])
    return samples, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--window", default="1d", help="unusual_traffic.window (1w in prod)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    window = int(parse_duration(args.window))
    end = (int(time.time()) // STEP) * STEP - 3600
    start = end - window - 3600

    with tempfile.TemporaryDirectory(prefix="hlthz-bench-") as tmp:
        work = Path(tmp)
        data = work / "prometheus-data"
        source = work / "input.om"
        with source.open("w") as out:
            out.writelines(_openmetrics(args.jobs, args.routes, start, end, window))
        backfill_openmetrics(source, data)
        source.unlink()
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": f"{STEP}s"}}))
        rate = "sum by (job) (rate(http_request_duration_seconds_count[5m]))"
        w = args.window
        variants = {
            "inline (no recording rules)": [
                f"abs({rate} - avg_over_time(({rate})[{w}:{STEP}s])) > 3 * "
                f"stddev_over_time(({rate})[{w}:{STEP}s])"
            ],
            "recorded rate, stats per evaluation": [
                f"abs(job:http_requests:rate5m - avg_over_time(job:http_requests:rate5m[{w}])) "
                f"> 3 * stddev_over_time(job:http_requests:rate5m[{w}])"
            ],
            "hlthz (recorded rate and stats)": [
                f"abs(job:http_requests:rate5m - job:http_requests:rate5m_avg{w}) > 3 * "
                f"job:http_requests:rate5m_stddev{w}"
            ],
        }
        baseline = [
            f"avg_over_time(job:http_requests:rate5m[{w}])",
            f"stddev_over_time(job:http_requests:rate5m[{w}])",
        ]
        rows = []
        with start_prometheus(
            config, work, extra_args=["--storage.tsdb.retention.time=30d"]
        ) as prom:
            for name, exprs in variants.items():
                samples, times = 0, []
                for _ in range(args.repeat):
                    total_s, total_t = 0, 0.0
                    for expr in exprs:
                        s, t = _query(prom.url, expr, end)
                        total_s, total_t = total_s + s, total_t + t
                    samples, times = total_s, [*times, total_t]
                cost = float(samples)
                median = statistics.median(times)
                if name.startswith("hlthz"):
                    # The baseline group runs every 2 m: 1/8 of its cost per 15 s evaluation.
                    b_samples, b_times = 0, []
                    for _ in range(args.repeat):
                        t_sum = 0.0
                        b_samples = 0
                        for expr in baseline:
                            s, t = _query(prom.url, expr, end)
                            b_samples, t_sum = b_samples + s, t_sum + t
                        b_times.append(t_sum)
                    share = STEP / BASELINE_STEP
                    cost += b_samples * share
                    median += statistics.median(b_times) * share
                rows.append((name, cost, median))

    base_cost, base_time = rows[0][1], rows[0][2]
    print(
        f"UnusualTrafficPattern per {STEP}s evaluation: {args.jobs} jobs x {args.routes} routes "
        f"x 2 status codes, window {w}, median of {args.repeat} queries"
    )
    header = (
        f"{'variant':<38} {'samples read':>14} {'vs inline':>10} {'query ms':>10} {'vs inline':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, cost, median in rows:
        print(
            f"{name:<38} {cost:>14,.0f} {base_cost / cost:>9.1f}x {median * 1000:>10.1f} "
            f"{base_time / median:>9.1f}x"
        )
    # Prometheus' stats count a subquery's inner samples only in part, so the inline row is a
    # lower bound; what its inner rate() calls read follows from the data's shape.
    inner = (window // STEP + 1) * args.jobs * args.routes * 2 * (RATE_WINDOW // STEP) * 2
    print(
        f"note: the inline subqueries' rate() calls read about {inner:,} samples per evaluation "
        "(steps x series x samples per 5m x 2), which Prometheus' count leaves out"
    )


if __name__ == "__main__":
    sys.exit(main())
