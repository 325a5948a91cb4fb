"""Replay engine speed against nginx on loopback, next to locust's own FastHttpUser.

Run: ``.venv/bin/python benchmarks/replay_engine.py`` (``--quick`` for a smaller run).

Measures, in one run, against one nginx worker answering ``200 ok``:

1. HLTHZ's maximum rate on one core: a capture replayed with every request due at once
   (``--rate`` far above what one core can send), concurrency 32;
2. locust FastHttpUser's closed-loop maximum on the same core: 32 users, no wait, one process;
   (1) and (2) are pinned to the same CPU (``--cpu``, every process they start included: the
   engine's child process would otherwise use the second core), alternate for ``--rounds``
   rounds, and the medians are compared;
3. schedule lag P99 and achieved rate at a fixed 1,000 requests/s for 10 s;
4. peak memory (max RSS of the engine process) replaying a 1,000,000-record capture;
5. distributed: the aggregate maximum rate with 1 and 2 local worker processes (the master
   streams them the capture; not pinned: all of this machine's cores) over a capture 4 times
   as long as (1)'s, medians of interleaved rounds, and the master's CPU time per 1,000,000
   requests it read, scheduled and shipped.

Targets: (1) >= 1.0 x (2); 2 workers >= 1.7 x 1 worker (issue 17); lag P99 < 5 ms with the
rate within 1 %; memory < 200 MB.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hlthz.procs import ManagedProcess, free_port, port_open
from hlthz.replay import CaptureRecord, CaptureWriter, ReplayPlan, ScheduleOptions, run_replay
from hlthz.tools.stack.services import find_binary

_NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

_LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class Closed(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/api/products/1")
"""


def _capture(path: Path, count: int) -> Path:
    t0 = time.time_ns()
    with CaptureWriter(path, source="bench") as writer:
        for i in range(count):
            writer.write(
                CaptureRecord(
                    id=str(i),
                    ts_ns=t0 + i * 1_000_000,
                    method="GET",
                    path=f"/api/products/{i % 1000}",
                    headers=[("accept", "application/json")],
                    session=None,
                )
            )
    return path


def _pinned(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _locust_closed(url: str, seconds: int, users: int, work: Path, cpu: int | None) -> float:
    locustfile = work / "locustfile.py"
    locustfile.write_text(_LOCUSTFILE)
    prefix = work / "locust"
    locust = str(Path(sys.executable).with_name("locust"))
    subprocess.run(
        [
            locust,
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 60,
        preexec_fn=lambda: _pinned(cpu),
    )
    with open(f"{prefix}_stats.csv") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise RuntimeError("locust wrote no aggregated row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--memory-records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="max-rate rounds (median counts)")
    parser.add_argument(
        "--cpu", type=int, default=1, help="pin both generators to this CPU (-1: no pinning)"
    )
    args = parser.parse_args()
    seconds = 3 if args.quick else 5
    max_records = 20_000 if args.quick else 30_000
    memory_records = 50_000 if args.quick else args.memory_records
    users = 32
    cpu = None if args.cpu < 0 else args.cpu

    with tempfile.TemporaryDirectory(prefix="hlthz-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        (work / "nginx.conf").write_text(_NGINX_CONF.format(dir=work, port=port))
        nginx = ManagedProcess(
            "nginx",
            # nginx on the other CPU, so the generators' core is theirs alone.
            (["taskset", "-c", str(1 - cpu)] if cpu in (0, 1) else [])
            + [find_binary("nginx"), "-c", str(work / "nginx.conf"), "-p", str(work)],
            log_path=work / "nginx.log",
            ready=lambda: port_open(port),
        )
        url = f"http://127.0.0.1:{port}"
        with nginx:
            # Warm-up, then HLTHZ flat out and locust closed-loop, alternating, each pinned to
            # the same CPU (nginx is not); medians count (the machine is shared and noisy).
            flat_out = ScheduleOptions(rate=1e7)  # as fast as the engine can send
            run_replay(
                ReplayPlan(
                    _capture(work / "warm.jsonl", 2000), url, schedule=flat_out, concurrency=users
                )
            )
            flat_capture = _capture(work / "max.jsonl", max_records)
            hlthz_runs, locust_runs = [], []
            everywhere = os.sched_getaffinity(0)
            for _ in range(args.rounds):
                _pinned(cpu)  # the engine's child process inherits the affinity
                try:
                    flat = run_replay(
                        ReplayPlan(flat_capture, url, schedule=flat_out, concurrency=users)
                    )
                finally:
                    os.sched_setaffinity(0, everywhere)
                hlthz_runs.append(flat.summary.rps)
                locust_runs.append(_locust_closed(url, seconds, users, work, cpu))
            hlthz_max, locust_max = statistics.median(hlthz_runs), statistics.median(locust_runs)
            per_round = statistics.median(
                h / lo for h, lo in zip(hlthz_runs, locust_runs, strict=True)
            )

            fixed = run_replay(
                ReplayPlan(
                    _capture(work / "fixed.jsonl", 10_000), url, schedule=ScheduleOptions(rate=1000)
                )
            )
            lag_p99 = fixed.summary.schedule_lag_ms.p99
            achieved = fixed.summary.requests / fixed.summary.duration_s

            # Distributed: 1 and 2 worker processes, interleaved; every process unpinned. A
            # capture 4 times as long: at twice the rate, the start (workers taking their first
            # batches) and the end (the last responses, the final reports) must stay a small
            # part of the run, or they, not the workers, would set the ratio.
            dist_capture = _capture(work / "dist.jsonl", 4 * max_records)
            per_workers: dict[int, list[float]] = {1: [], 2: []}
            master_cpu_s_per_m: list[float] = []
            for _ in range(args.rounds):
                for count in (1, 2):
                    run = run_replay(
                        ReplayPlan(
                            dist_capture, url, schedule=flat_out, concurrency=users, workers=count
                        )
                    )
                    per_workers[count].append(run.summary.rps)
                    if count == 2:
                        cpu_s = (run.summary.generator_cpu or 0.0) * run.summary.duration_s
                        master_cpu_s_per_m.append(cpu_s / run.summary.requests * 1e6)
            one, two = (statistics.median(per_workers[n]) for n in (1, 2))
            paired = statistics.median(
                b / a for a, b in zip(per_workers[1], per_workers[2], strict=True)
            )

            big = _capture(work / "big.jsonl", memory_records)
            size_mb = big.stat().st_size / 2**20
            started = time.monotonic()
            mem = run_replay(ReplayPlan(big, url, schedule=flat_out, concurrency=users))
            mem_elapsed = time.monotonic() - started
            # ru_maxrss of waited-for children: the engine process (KiB on Linux).
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    rows = [
        (
            "max rate on one core, median (req/s)" if cpu is not None else "max rate (req/s)",
            f"{hlthz_max:,.0f}",
            f"{locust_max:,.0f}",
            f"{hlthz_max / locust_max:.2f}x",
            ">= 1.0x",
        ),
        (
            # Each round's pair ran back to back, so its ratio shares that moment's machine.
            "  the same, median of each round's ratio",
            "-",
            "-",
            f"{per_round:.2f}x",
            ">= 1.0x",
        ),
        ("schedule lag P99 at 1,000 req/s (ms)", f"{lag_p99:.2f}", "-", "-", "< 5 ms"),
        (
            "achieved rate at 1,000 req/s",
            f"{achieved:,.1f}",
            "-",
            f"{achieved / 1000 - 1:+.2%}",
            "within 1 %",
        ),
        (
            f"peak RSS, {mem.summary.requests:,} records ({size_mb:.0f} MB file) (MB)",
            f"{peak_mb:.0f}",
            "-",
            "-",
            "< 200 MB",
        ),
        ("max rate, 1 worker process, median (req/s)", f"{one:,.0f}", "-", "-", "-"),
        (
            "max rate, 2 worker processes, median (req/s)",
            f"{two:,.0f}",
            "-",
            f"{two / one:.2f}x",
            ">= 1.7x of 1",
        ),
        ("  the same, median of each round's ratio", "-", "-", f"{paired:.2f}x", ">= 1.7x of 1"),
        (
            "master CPU per 1,000,000 requests shipped (s)",
            f"{statistics.median(master_cpu_s_per_m):.1f}",
            "-",
            "-",
            "-",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'hlthz':>10}  {'locust':>10}  {'ratio':>8}  target")
    for name, ours, theirs, ratio, target in rows:
        print(f"{name:<{width}}  {ours:>10}  {theirs:>10}  {ratio:>8}  {target}")
    print(
        f"(max-rate rounds, req/s: hlthz {', '.join(f'{r:,.0f}' for r in hlthz_runs)}; locust "
        f"{', '.join(f'{r:,.0f}' for r in locust_runs)}; memory run {mem_elapsed:.0f} s; "
        f"{users} in flight; "
        + (f"both pinned to CPU {cpu}; " if cpu is not None else "not pinned; ")
        + "nginx 1 worker on 127.0.0.1; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        "command: .venv/bin/python benchmarks/replay_engine.py" + (" --quick" if args.quick else "")
    )


if __name__ == "__main__":
    main()
