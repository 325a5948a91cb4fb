"""How long ``hlthz alerts backtest`` takes on a week of 15 s data: every alert, 20 series each.

    .venv/bin/python benchmarks/alerts_backtest.py [--days 7] [--series 20] [--repeat 3]

A real Prometheus is loaded (``promtool tsdb create-blocks-from openmetrics``) with ``--days``
of synthetic exporter metrics scraped every 15 s from ``--series`` jobs (each with its own
pool, process and cache, so every alert has that many label sets to judge), with slow, failing,
exhausted, swollen and cold episodes planted at random (seeded) times, plus the baseline series
the generated rules would have recorded. Then the whole range is backtested with the default
thresholds, twice, ``--repeat`` times each: with every recording rule inlined (Prometheus
reads the raw samples: what a what-if file needs) and reading the series Prometheus recorded (it
runs the same rules, loaded from the generated file; the recorded history is part of the
backfill, computed here). The table gives the median wall time of each phase and their ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import yaml

from hlthz.alerts import BacktestOptions, load_config, render_all, run_backtest
from hlthz.tools.stack.services import backfill_openmetrics, start_prometheus

STEP = 15
LE = ("0.25", "0.5", "1", "2.5", "+Inf")
CONFIG = """\
version: 1
scrape_interval: 15s
rate_window: 5m
buckets:
  request_duration_seconds: [0.25, 0.5, 1, 2.5]
"""


def _windows(
    rng: random.Random, start: int, end: int, count: int, longest: int
) -> list[tuple[int, int]]:
    out = []
    for _ in range(count):
        a = rng.randrange(start, end - longest) // STEP * STEP
        out.append((a, a + rng.randrange(1, longest // STEP) * STEP))
    return out


def _inside(t: int, windows: list[tuple[int, int]]) -> bool:
    return any(a < t <= b for a, b in windows)


def _openmetrics(jobs: int, start: int, end: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    times = range(start, end + 1, STEP)
    for family in (
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
        "up",
        "db_pool_connections_in_use",
        "db_pool_connections_max",
        "db_pool_pending_acquires",
        "process_resident_memory_bytes",
        "process_memory_limit_bytes",
        "cache_requests_total",
    ):
        # "unknown": an OpenMetrics counter family would add a _total suffix to the names.
        yield f"# TYPE {family} unknown\n"
    for j in range(jobs):
        job = f'job="api{j}"'
        inst = f'instance="api{j}:8000"'
        slow = _windows(rng, start, end, 4, 3600)
        failing = _windows(rng, start, end, 4, 1800)
        down = _windows(rng, start, end, 2, 600)
        pool = _windows(rng, start, end, 3, 900)
        swollen = _windows(rng, start, end, 2, 7200)
        cold = _windows(rng, start, end, 2, 7200)
        rps = 2 + j % 5
        flags = [
            (
                _inside(t, slow),
                _inside(t, failing),
                _inside(t, down),
                _inside(t, pool),
                _inside(t, swollen),
                _inside(t, cold),
            )
            for t in times
        ]
        n = rps * STEP
        for le in LE:
            total = 0
            lines = []
            for t, f in zip(times, flags, strict=True):
                # Fast requests take 0.1 s, slow ones 0.7 s.
                total += n if not f[0] or le in ("1", "2.5", "+Inf") else 0
                lines.append(
                    f'http_request_duration_seconds_bucket{{{job},le="{le}"}} {total} {t}\n'
                )
            yield from lines
        for code in ("200", "500"):
            total = 0
            lines = []
            for t, f in zip(times, flags, strict=True):
                errors = n // 4 if f[1] else 0
                total += errors if code == "500" else n - errors
                key = f'http_request_duration_seconds_count{{{job},status_code="{code}"}}'
                lines.append(f"{key} {total} {t}\n")
            yield from lines
        yield from (
            f"up{{{job},{inst}}} {0 if f[2] else 1} {t}\n"
            for t, f in zip(times, flags, strict=True)
        )
        pool_labels = f'{job},{inst},pool="default"'
        yield from (
            f"db_pool_connections_in_use{{{pool_labels}}} {10 if f[3] else 3} {t}\n"
            for t, f in zip(times, flags, strict=True)
        )
        yield from (f"db_pool_connections_max{{{pool_labels}}} 10 {t}\n" for t in times)
        yield from (f"db_pool_pending_acquires{{{pool_labels}}} 0 {t}\n" for t in times)
        yield from (
            f"process_resident_memory_bytes{{{job},{inst}}} {900 if f[4] else 400}000000 {t}\n"
            for t, f in zip(times, flags, strict=True)
        )
        yield from (f"process_memory_limit_bytes{{{job},{inst}}} 1000000000 {t}\n" for t in times)
        for result in ("hit", "miss"):
            total = 0
            lines = []
            for t, f in zip(times, flags, strict=True):
                hits = n // 5 if f[5] else n * 9 // 10
                total += hits if result == "hit" else n - hits
                lines.append(
                    f'cache_requests_total{{{job},cache="catalog",result="{result}"}} {total} {t}\n'
                )
            yield from lines
        yield from _recorded(job, times, flags, rps * STEP)
    # What the baseline group would have recorded every 2 m (UnusualTrafficPattern reads it).
    for stat, value in (("avg", None), ("stddev", 0.3)):
        metric = f"job:http_requests:rate5m_{stat}1w"
        yield f"# TYPE {metric} gauge\n"
        for j in range(jobs):
            v = value if value is not None else 2 + j % 5
            yield from (f'{metric}{{job="api{j}"}} {v} {t}\n' for t in range(start, end + 1, 120))
    yield "# EOF\n"


def _cpu_seconds(url: str) -> float:
    """Prometheus' own CPU time so far: the work a backtest costs it, whatever the load."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r"^process_cpu_seconds_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else math.nan


def _wait_for_compaction(url: str, quiet: float = 15.0) -> None:
    """Prometheus merges the backfilled 2-hour blocks once started; measuring during that
    would time the compaction. Wait until no compaction has run for ``quiet`` seconds."""
    last, since = -1.0, time.monotonic()
    while time.monotonic() - since < quiet:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
        match = re.search(r"^prometheus_tsdb_compactions_total (\S+)$", text, re.M)
        count = float(match.group(1)) if match else 0.0
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(1)


def _write_blocks(lines: Iterator[str], work: Path, start: int) -> list[Path]:
    """Split OpenMetrics lines (each series' samples in time order) into one file per 2-hour
    block: ``# TYPE`` lines go to every file, each series stays contiguous in each."""
    block = 7200
    first = start // block * block
    handles: dict[int, TextIO] = {}
    paths: list[Path] = []
    types: list[str] = []
    for line in lines:
        if line.startswith("#"):
            if line.startswith("# TYPE"):
                types.append(line)
                for handle in handles.values():
                    handle.write(line)
            continue
        index = (int(line.rsplit(" ", 1)[1]) - first) // block
        handle = handles.get(index)
        if handle is None:
            paths.append(work / f"block-{index:04d}.om")
            handle = handles[index] = paths[-1].open("w")
            handle.writelines(types)
        handle.write(line)
    for handle in handles.values():
        handle.write("# EOF\n")
        handle.close()
    return paths


def _recorded(job: str, times: range, flags: list[tuple[bool, ...]], n: int) -> Iterator[str]:
    """What the generated recording rules would have written from these metrics every 15 s
    (the values a 5m window gives, to the precision a benchmark needs)."""
    window = 300 // STEP
    seen = [0] * 6
    recent: list[tuple[bool, ...]] = []
    rows: list[tuple[int, float, float, float, float]] = []
    for t, f in zip(times, flags, strict=True):
        recent.append(f)
        seen = [a + b for a, b in zip(seen, f, strict=True)]
        if len(recent) > window:
            seen = [a - b for a, b in zip(seen, recent.pop(0), strict=True)]
        rps = n / STEP
        errors = rps / 4 * seen[1] / window
        p95 = 0.95 if seen[0] else 0.2375
        hit = (0.2 * seen[5] + 0.9 * (window - seen[5])) / window
        rows.append((t, rps, errors, p95, hit))
    w = "rate5m"
    for metric, index, labels in (
        (f"job:http_requests:{w}", 1, job),
        (f"job:http_request_errors:{w}", 2, job),
        (f"job:http_request_duration_seconds:p95_{w}", 3, job),
        (f"job_cache:cache_requests:{w}", 1, f'{job},cache="catalog"'),
        (f"job_cache:cache_hit:ratio_{w}", 4, f'{job},cache="catalog"'),
    ):
        yield f"# TYPE {metric} gauge\n"
        yield from (f"{metric}{{{labels}}} {r[index]:.6g} {r[0]}\n" for r in rows)
    metric = f"job:http_request_errors:ratio_{w}"
    yield f"# TYPE {metric} gauge\n"
    yield from (f"{metric}{{{job}}} {r[2] / r[1]:.6g} {r[0]}\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    end = (int(time.time()) // 7200) * 7200 - 3600
    start = end - int(args.days * 86400)
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hlthz-bench-") as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        files = _write_blocks(_openmetrics(args.series, start, end, args.seed), work, start)
        setup["write OpenMetrics"] = time.perf_counter() - began
        size = sum(f.stat().st_size for f in files)
        began = time.perf_counter()
        # One file per 2-hour block: promtool reads its whole input once per block it writes.
        for source in files:
            backfill_openmetrics(source, work / "prometheus-data", timeout=3600)
            source.unlink()
        setup["promtool create-blocks"] = time.perf_counter() - began
        (work / "config.yaml").write_text(CONFIG)
        # Prometheus runs the generated rules, so the backtest may read what they recorded.
        rules = render_all(load_config(work / "config.yaml"))["generated/hlthz.rules.yml"]
        (work / "hlthz.rules.yml").write_text(rules)
        (work / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
                    "rule_files": [str(work / "hlthz.rules.yml")],
                }
            )
        )
        began = time.perf_counter()
        proc = start_prometheus(work / "prometheus.yml", work)
        setup["start Prometheus"] = time.perf_counter() - began
        began = time.perf_counter()
        _wait_for_compaction(str(proc.url))
        setup["Prometheus compacts the blocks"] = time.perf_counter() - began
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        found: dict[bool, int] = {}
        try:
            for _ in range(args.repeat):
                for inline in runs:
                    cpu = _cpu_seconds(str(proc.url))
                    began = time.perf_counter()
                    result = run_backtest(
                        BacktestOptions(
                            prometheus=str(proc.url),
                            start=start,
                            end=end,
                            config=work / "config.yaml",
                            inline=inline,
                            timeout=600,
                        )
                    )
                    phases = dict(result.runs[0].phases)
                    phases["total"] = time.perf_counter() - began
                    phases["Prometheus CPU seconds"] = _cpu_seconds(str(proc.url)) - cpu
                    runs[inline].append(phases)
                    found[inline] = sum(len(a.episodes) for a in result.runs[0].alerts)
                    if not inline:
                        assert any("read as Prometheus recorded" in n for n in result.runs[0].notes)
        finally:
            proc.stop()

    load = os.getloadavg()
    steps = (end - start) // STEP
    print(
        f"alerts backtest: {args.days:g} days at {STEP}s ({steps:,} evaluations), {args.series} "
        f"series per alert, {len(result.runs[0].alerts)} alerts; "
        f"OpenMetrics {size / 1e6:,.0f} MB"
    )
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; "
        f"median of {args.repeat}"
    )
    print()
    print(f"{'setup (once)':32} {'s':>9}")
    for name, seconds in setup.items():
        print(f"{name:32} {seconds:9.2f}")
    print()
    print(f"{'backtest phase (s)':34} {'inlined':>9} {'recorded':>9} {'ratio':>7}")
    names = [k for k in runs[True][0] if not k.startswith("query ")] + sorted(
        k for k in runs[True][0] if k.startswith("query ")
    )
    for name in names:
        raw = statistics.median(r[name] for r in runs[True])
        rec = statistics.median(r[name] for r in runs[False])
        ratio = raw / rec if rec > 0 else math.nan
        print(f"{name:34} {raw:9.2f} {rec:9.2f} {ratio:6.1f}x")
    print(f"{'episodes found':34} {found[True]:9} {found[False]:9}")
    print()
    print("inlined: recording rules inlined, Prometheus reads the raw samples (--inline);")
    print("recorded: Prometheus runs the rules unchanged, the alerts read what they recorded.")
    print("'query <alert>' rows: wall time of that alert's range queries (they overlap).")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
