"""Calibration of the release gate: how often it cries wolf, how often it catches a regression.

Run: ``.venv/bin/python benchmarks/gate_calibration.py`` (``--quick`` for a smaller run).

A loopback server (this file, ``--serve``) answers five routes after a lognormal delay around
each route's own median (sigma 0.35): a 2 ms route with 60 requests up to busy 20-40 ms routes
with hundreds (1,360 requests a replay, sent at 300 requests/s). A server started with
``--slow ROUTE=FACTOR`` multiplies that route's delays (``*`` = every route).

Per mode, sequential (a baseline run, then a candidate run against another server) and
interleaved (one ``replay run --baseline`` run, ABBA blocks of 10, the default):

- A/A: both servers identical; a comparison with any failed check is a false fail;
- A/B: the candidate's server +30 % or +10 % on ``search`` (400 requests), or +10 % on every
  route; a comparison that fails catches it.

Every comparison uses the default gates; the +10 % rows also say how often ``p95 > +5%`` (a
gate meant to catch a 10 % change) catches them. An interleaved report is judged as the gate
judges it, its two sides paired (docs/gate.md), and again as if they were two separate runs
("unpaired"): the same reports, so the two rows show what pairing buys. ``--burn N`` keeps N
processes spinning on the CPUs throughout, a busy CI runner made repeatable.

Targets (issue 12): A/A false fails <= 1 in 50 in both modes; +30 % on a route with >= 400
requests caught >= 95 %; +10 % overall caught >= 80 % interleaved. Sequential A/A pairs are
consecutive runs (run i against run i+1, alternating the two servers), so 51 runs make 50 pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROUTES = {  # name: (median ms, requests per replay)
    "health": (2.0, 60),
    "items": (8.0, 150),
    "search": (20.0, 400),
    "cart": (30.0, 450),
    "report": (40.0, 300),
}
SIGMA = 0.35
RATE = 300.0
STRONG_GATE = ("p95 > +5%", "p99 > +20%", "error_rate > 1%", "status_change > 5%")


# -- the server (a process of its own) ---------------------------------------------------------


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: dict) -> None:
    rng = random.Random()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            name = path.strip("/").split("/")[0]
            median, _ = ROUTES.get(name, (1.0, 0))
            factor = slow.get(name, slow.get("*", 1.0))
            await asyncio.sleep(median * factor * rng.lognormvariate(0, SIGMA) / 1000)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


def serve(port: int, slow: dict[str, float]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, slow), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the benchmark -----------------------------------------------------------------------------


def start_server(folder: Path, slow: str | None) -> object:
    from hlthz.procs import ManagedProcess, free_port, port_open

    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port)]
    if slow:
        argv += ["--slow", slow]
    proc = ManagedProcess(
        f"calib-{port}",
        argv,
        log_path=folder / f"server-{port}.log",
        ready=lambda: port_open(port),
        ready_timeout=20,
    )
    proc.start()
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def write_capture(path: Path) -> Path:
    from hlthz.replay import CaptureRecord, CaptureWriter

    rng = random.Random(12)
    items = [name for name, (_, count) in ROUTES.items() for _ in range(count)]
    rng.shuffle(items)
    with CaptureWriter(path, source="calibration") as writer:
        for i, name in enumerate(items):
            writer.write(
                CaptureRecord(
                    id=str(i),
                    ts_ns=1_700_000_000_000_000_000 + i * 1_000_000,
                    method="GET",
                    path=f"/{name}/{rng.randrange(1000)}",
                    headers=[("accept", "*/*")],
                    status=200,
                )
            )
    return path


@dataclass
class Bench:
    """What every replay of one calibration shares: the capture, the servers' URLs by name
    (``a``, ``a2`` and one per scenario) and ``--save``'s folder."""

    capture: Path
    url: dict[str, str]
    save: Path | None = None

    def replay(self, target: str, baseline: str | None = None, *, tag: str):
        """One replay's report, also written to ``--save``'s folder as ``TAG.json``."""
        from hlthz.replay import ReplayPlan, ScheduleOptions, run_replay

        plan = ReplayPlan(
            capture=self.capture,
            target=self.url[target],
            baseline=None if baseline is None else self.url[baseline],
            schedule=ScheduleOptions(rate=RATE),
            routes=tuple(f"/{name}/{{id}}" for name in ROUTES),
        )
        report = run_replay(plan)
        if self.save is not None:
            report.write(self.save / f"{tag}.json")
        return report


def burners(count: int, folder: Path) -> list:
    """``count`` processes that keep a CPU busy until stopped (``--burn``)."""
    from hlthz.procs import ManagedProcess

    procs = []
    for i in range(count):
        argv = [sys.executable, "-c", "while True: pass"]
        procs.append(ManagedProcess(f"burn-{i}", argv, log_path=folder / f"burn-{i}.log").start())
    return procs


def unpaired(report):
    """The interleaved ``report``'s candidate side on its own: judged against its baseline side
    as two separate runs would be."""
    return replace(report, baseline=None)


def verdict(base, cand, gates=None) -> tuple[str, list[str]]:
    """``fail``, ``pass`` or ``refused: ...`` with the default gates (or ``gates``), and the
    checks that failed (``scope: gate``)."""
    from hlthz.errors import ReplayError
    from hlthz.replay.compare import Allow, GateOptions, compare_reports

    # The lag refusal is off: this shared machine is busy, and the question here is the
    # statistics (docs/gate.md); refusals of other kinds are counted apart.
    allow = Allow(lag=True)
    options = GateOptions(allow=allow) if gates is None else GateOptions(fail_on=gates, allow=allow)
    try:
        comparison = compare_reports(base, cand, options)
    except ReplayError as exc:
        return f"refused: {exc}", []
    if not comparison.judged:
        return "unjudged", []
    failed = [f"{c.scope}: {c.gate}" for c in comparison.failures]
    return ("fail" if comparison.failed else "pass"), failed


Row = tuple[str, str, str, int, int, str]


def aa_rows(bench: Bench, mode: str, aa: int, refused: list[str]) -> list[Row]:
    """``aa`` identical-build comparisons in ``mode``: how many the default gates fail."""
    judged: list[tuple[str, list[str]]] = []
    alone = 0
    if mode == "sequential":
        runs = [
            bench.replay("a" if i % 2 == 0 else "a2", tag=f"seq-aa-{i:03d}") for i in range(aa + 1)
        ]
        judged = [verdict(runs[i], runs[i + 1]) for i in range(aa)]
    else:
        for i in range(aa):
            report = bench.replay("a2", baseline="a", tag=f"int-aa-{i:03d}")
            judged.append(verdict(report.baseline, report))
            alone += verdict(report.baseline, unpaired(report))[0] == "fail"
    refused += [outcome for outcome, _ in judged if outcome.startswith("refused")]
    fails = sum(outcome == "fail" for outcome, _ in judged)
    rows: list[Row] = [(mode, "A/A", "false fails", fails, aa, "<= 1 in 50")]
    if mode != "sequential":
        rows.append((mode, "A/A", "false fails unpaired", alone, aa, "-"))
    print(f"{mode} A/A: {fails}/{aa} false fails", flush=True)
    checks = sorted({check for _, failed in judged for check in failed})
    if checks:
        print(f"  failed checks: {', '.join(checks)}", flush=True)
    return rows


def ab_rows(bench: Bench, mode: str, label: str, ab: int, refused: list[str]) -> list[Row]:
    """``ab`` comparisons in ``mode`` of the baseline with scenario ``label``'s slower build."""
    caught = strong = alone = 0
    for i in range(ab):
        tag = f"{mode[:3]}-{label.replace('%', '').replace(' ', '-')}-{i:03d}"
        if mode == "sequential":
            base = bench.replay("a", tag=f"{tag}-base")
            cand = bench.replay(label, tag=f"{tag}-cand")
        else:
            cand = bench.replay(label, baseline="a", tag=tag)
            base = cand.baseline
        outcome, _ = verdict(base, cand)
        if outcome.startswith("refused"):
            refused.append(outcome)
        caught += outcome == "fail"
        strong += verdict(base, cand, STRONG_GATE)[0] == "fail"
        if mode != "sequential":
            alone += verdict(base, unpaired(cand))[0] == "fail"
    target = {"+30% search": ">= 95 %", "+10% all": ">= 80 % (interleaved)"}
    rows: list[Row] = [(mode, label, "caught", caught, ab, target.get(label, "-"))]
    if mode != "sequential":
        rows.append((mode, label, "caught unpaired", alone, ab, "-"))
    if label.startswith("+10%"):
        rows.append((mode, label, "caught by p95 > +5%", strong, ab, "-"))
    print(f"{mode} {label}: caught {caught}/{ab} (p95 > +5%: {strong}/{ab})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 A/A and 5 A/B per scenario")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--slow", help=argparse.SUPPRESS)
    parser.add_argument("--modes", default="sequential,interleaved")
    parser.add_argument("--aa", type=int, help="A/A comparisons per mode (default 50)")
    parser.add_argument("--ab", type=int, help="A/B comparisons per scenario (default 20)")
    parser.add_argument(
        "--scenarios", help="A/B scenarios to run, comma-separated (default: all three)"
    )
    parser.add_argument(
        "--burn", type=int, default=0, help="keep N CPU-bound processes running (a busy runner)"
    )
    parser.add_argument(
        "--save", type=Path, help="keep each replay's report in this folder, to judge again"
    )
    args = parser.parse_args()
    if args.serve:
        slow = {}
        if args.slow:
            name, _, factor = args.slow.partition("=")
            slow[name] = float(factor)
        serve(args.serve, slow)
        return
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    aa, ab = (10, 5) if args.quick else (50, 20)
    aa = aa if args.aa is None else args.aa
    ab = ab if args.ab is None else args.ab
    scenarios = {"+30% search": "search=1.3", "+10% search": "search=1.1", "+10% all": "*=1.1"}
    if args.scenarios:
        wanted = [label.strip() for label in args.scenarios.split(",")]
        unknown = [label for label in wanted if label not in scenarios]
        if unknown:
            parser.error(f"--scenarios: unknown {unknown}; choose from {list(scenarios)}")
        scenarios = {label: scenarios[label] for label in wanted}
    load0 = os.getloadavg()
    started = time.monotonic()
    rows: list[Row] = []
    refused: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hlthz-calib-") as tmp:
        folder = Path(tmp)
        servers = {"a": start_server(folder, None), "a2": start_server(folder, None)}
        burning: list = []
        for label, slow in scenarios.items():
            servers[label] = start_server(folder, slow)
        bench = Bench(
            capture=write_capture(folder / "calib.jsonl"),
            url={key: proc.url for key, proc in servers.items()},  # type: ignore[attr-defined]
            save=args.save,
        )
        try:
            burning = burners(args.burn, folder)
            for mode in args.modes.split(","):
                if aa:
                    rows += aa_rows(bench, mode, aa, refused)
                for label in scenarios:
                    rows += ab_rows(bench, mode, label, ab, refused)
        finally:
            for proc in [*servers.values(), *burning]:
                proc.stop()  # type: ignore[attr-defined]
    load1 = os.getloadavg()
    print()
    print(
        f"gate calibration: {sum(c for _, c in ROUTES.values()):,} requests a replay at "
        f"{RATE:g}/s, lognormal sigma {SIGMA}, default gates, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(
        f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} CPUs)"
    )
    print()
    print("| mode | scenario | measure | count | of | rate | target |")
    print("|---|---|---|---|---|---|---|")
    for mode, label, measure, count, n, target in rows:
        rate = count / n if n else math.nan
        print(f"| {mode} | {label} | {measure} | {count} | {n} | {rate:.0%} | {target} |")
    if refused:
        print(f"\n{len(refused)} comparisons refused, e.g.: {refused[0]}")


if __name__ == "__main__":
    main()
