"""``hlthz demo``: the whole before/after story, end to end, on the embedded defaults.

1. Seed the demo data (SQLite) once; every API instance below starts from its own copy of it,
   so all of them see exactly the same rows.
2. Serve the ``before`` profile with the recording middleware and let scripted shoppers
   (:mod:`hlthz.tools.demo.traffic`) use it: that capture is the "production traffic".
3. Serve ``after`` and a fresh ``before``, and replay the capture against each with
   ``hlthz replay run --allow-writes`` (a subprocess: the engine runs on locust, which
   monkey-patches sockets). Each API's ``/metrics`` is scraped around its replay for the
   server-side evidence (:mod:`hlthz.tools.demo.evidence`).
4. Compare the two replay reports, print the audit table, write ``summary.json`` and the
   comparison's ``report.html``.
5. Generate the alert rules and dashboards next to the report and say how to use them.

Every process started here is stopped when the demo ends, fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import signal
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hlthz.alerts import find_project
from hlthz.alerts import generate as generate_alerts
from hlthz.dashboards import generate as generate_dashboards
from hlthz.errors import DemoError, UsageError
from hlthz.files import atomic_write
from hlthz.procs import (
    LOOPBACK,
    ManagedProcess,
    ProcessGroup,
    free_port,
    hlthz_command,
    http_ok,
    port_open,
)
from hlthz.replay import Allow, GateOptions, Report, compare_reports, read_capture
from hlthz.tools.demo import DEFAULT_DATA_DIR, DEFAULT_OUT
from hlthz.tools.demo.evidence import Scrape, histogram_quantile, scrape, server_delta
from hlthz.tools.demo.report import (
    audit_rows,
    optimization_evidence,
    print_audit,
    print_findings,
    single_switch_rows,
    summarize_run,
    time_saved_by_route,
)
from hlthz.tools.demo.traffic import (
    TrafficPlan,
    TrafficStats,
    burst,
    drive_traffic,
    response_bytes,
)
from hlthz.tools.diagnose import (
    Diagnosis,
    ScrapeWindow,
    build_snapshot,
    diagnose_snapshot,
    load_limits,
    url_fetch,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_OUT",
    "FULL",
    "QUICK",
    "DemoError",
    "DemoOptions",
    "DemoSize",
    "check_optimizations",
    "run_demo",
]

SQLITE_GLOB = "demo.sqlite3*"
_ORDER_POST = {"method": "POST", "route": "/api/orders"}


@dataclass(frozen=True)
class DemoSize:
    """How big a run is: the data set, the shoppers and the replay speed."""

    name: str
    seed_args: tuple[str, ...]
    traffic: TrafficPlan
    speed: float = 1.0
    #: Concurrent large listings of the burst phase (more than the before pool of 10).
    burst: int = 14
    burst_per_page: int = 10


QUICK = DemoSize(
    "quick",
    ("--products", "2000", "--reviews", "20000"),
    TrafficPlan(sessions=36, duration=15.0, concurrency=12),
)
# The full set is half the demo API's default: its listing still takes a few hundred ms per
# page without the fixes, and the shoppers' rate keeps the `before` API busy but not collapsed,
# which is the story's starting point (slow, not down).
FULL = DemoSize(
    "full",
    ("--products", "10000", "--reviews", "100000"),
    TrafficPlan(sessions=36, duration=50.0, concurrency=8, think_time=(0.2, 1.0)),
)


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo writes (``out_dir``), how big it runs, where seeded data is kept, and
    which optimizations to also replay one at a time (each costs one more replay)."""

    out_dir: Path = DEFAULT_OUT
    quick: bool = False
    data_dir: Path = DEFAULT_DATA_DIR
    #: Optimizations also measured one at a time: ``before`` with only that switch on.
    optimizations: tuple[str, ...] = ()

    @property
    def size(self) -> DemoSize:
        return QUICK if self.quick else FULL


def check_optimizations(names: tuple[str, ...]) -> None:
    """Raise :class:`hlthz.errors.UsageError` for a name the demo API does not know."""
    from hlthz.demo_api.settings import OPTIMIZATIONS

    for name in names:
        if name not in OPTIMIZATIONS:
            raise UsageError(
                f"--optimization {name!r}: unknown; use one of {', '.join(OPTIMIZATIONS)}"
            )


@dataclass
class _Run:
    """The processes one demo started, so each is stopped and listed in the summary."""

    logs: Path
    group: ProcessGroup = field(default_factory=ProcessGroup)

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """What ran, with pids, so anyone can check that nothing was left behind."""
        return [{"name": p.name, "pid": p.pid, "url": p.url} for p in self.group.processes]

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        url: str = "",
        ready: Callable[[], bool] | None = None,
        timeout: float = 60.0,
    ) -> ManagedProcess:
        proc = ManagedProcess(
            name, argv, log_path=self.logs / f"{name}.log", ready=ready, ready_timeout=timeout
        )
        proc.url = url
        return self.group.start(proc)

    def wait(self, proc: ManagedProcess, timeout: float, what: str, *, waited: float = 0.0) -> None:
        """Wait for a one-shot process; :class:`DemoError` quoting its log when it fails.

        ``waited`` is how long the caller already waited, so the message gives the whole time.
        """
        assert proc.popen is not None
        try:
            code = proc.popen.wait(timeout=timeout)
        except Exception:
            proc.stop()
            raise DemoError(
                f"{what} took more than {waited + timeout:.0f} s; see {proc.log_path}: "
                f"{proc.log_tail()}"
            ) from None
        if code != 0:
            raise DemoError(f"{what} failed (exit {code}); see {proc.log_path}: {proc.log_tail()}")

    def stop_all(self) -> None:
        self.group.stop_all()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so ``kill`` also stops every process the demo started."""

    def _raise(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _api_argv(profile: str, port: int, data_dir: Path, *extra: str) -> list[str]:
    return [
        *hlthz_command(),
        "api",
        "serve",
        "--profile",
        profile,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def _copy_data(seed_dir: Path, dest: Path) -> None:
    """Give one API instance its own copy of the seeded database."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in seed_dir.glob(SQLITE_GLOB):
        shutil.copy2(path, dest / path.name)


def _ratio(before: float | None, after: float | None) -> float | None:
    """How many times lower ``after`` is (None when either is missing or after is 0)."""
    if before is None or after is None or after <= 0:
        return None
    return round(before / after, 2)


def _diagnosis_json(replay: Diagnosis, burst_window: Diagnosis) -> dict[str, Any]:
    """Both windows of one profile as one ``hlthz_diagnosis`` document: the replay's findings,
    then the burst's pool finding (the burst's other findings repeat the replay's)."""
    document = replay.to_json()
    document["findings"] += [
        {**f.to_json(), "window": "burst"}
        for f in burst_window.findings
        if f.cause in ("pool_exhaustion", "errors")
    ]
    document["burst_window_seconds"] = round(burst_window.window_seconds, 3)
    return document


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class Demo:
    """One run of the demo; :func:`run_demo` is the way to use it."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.size = options.size
        self.console = console
        self.out = Path(options.out_dir).resolve()
        self.work = self.out / "work"
        self.run = _Run(self.out / "logs")
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[bold cyan]{elapsed:6.1f}s[/] {text}")

    # --- 1. data ------------------------------------------------------------------------

    def seed(self) -> Path:
        seed_dir = Path(self.options.data_dir).resolve() / self.size.name
        self.step(f"seeding the demo data ({self.size.name} set) in {seed_dir}")
        argv = [
            *hlthz_command(),
            "api",
            "seed",
            "--reuse",
            "--data-dir",
            str(seed_dir),
            *self.size.seed_args,
        ]
        with self.console.status("  seeding (reused when already there)"):
            proc = self.run.start("seed", argv)
            self.run.wait(proc, 600.0, "seeding the demo data")
        if not any(seed_dir.glob(SQLITE_GLOB)):
            raise DemoError(f"seeding wrote no database in {seed_dir}; see {proc.log_path}")
        return seed_dir

    def serve(
        self, name: str, profile: str, seed_dir: Path, *extra: str, probe: bool = True
    ) -> ManagedProcess:
        """Start an API on its own copy of the data; ready when ``/health`` answers.

        ``probe=False`` waits for the port instead (uvicorn listens only once the app started),
        so a recording instance captures no health checks of ours.
        """
        port = free_port()
        data = self.work / name
        _copy_data(seed_dir, data)
        url = f"http://{LOOPBACK}:{port}"
        return self.run.start(
            f"api-{name}",
            _api_argv(profile, port, data, *extra),
            url=url,
            ready=(lambda: http_ok(f"{url}/health")) if probe else (lambda: port_open(port)),
        )

    # --- 2. production traffic ----------------------------------------------------------

    def record(self, seed_dir: Path) -> tuple[Path, TrafficStats, int]:
        capture = self.out / "capture.jsonl"
        capture.unlink(missing_ok=True)
        self.step("starting the API in the [red]before[/] profile, recording what it serves")
        api = self.serve("recorded", "before", seed_dir, "--record", str(capture), probe=False)
        plan = self.size.traffic
        self.step(
            f"shoppers browse, view products, order and open dashboards "
            f"({plan.sessions} sessions over {plan.duration:g} s)"
        )
        with _progress(self.console) as progress:
            task = progress.add_task("production traffic", total=plan.duration, detail="")

            def update(stats: TrafficStats) -> None:
                elapsed = min(plan.duration, time.monotonic() - t0)
                progress.update(
                    task, completed=elapsed, detail=f"{stats.total} requests, {stats.errors} failed"
                )

            t0 = time.monotonic()
            stats = drive_traffic(api.url, plan, on_progress=update)
        # SIGTERM lets the server shut down cleanly, which flushes the capture.
        api.stop(timeout=30.0)
        records = self._count_records(capture)
        self.step(
            f"captured {records} requests from {stats.total} sent "
            f"({stats.statuses.get('5xx', 0)} server errors) in {capture}"
        )
        return capture, stats, records

    def _count_records(self, capture: Path) -> int:
        if not capture.exists():
            raise DemoError(
                f"the API wrote no capture at {capture}; see {self.run.logs / 'api-recorded.log'}"
            )
        count = sum(1 for _ in read_capture(capture, skip_invalid=True))
        if count == 0:
            raise DemoError(f"the capture {capture} holds no request; the recording failed")
        return count

    # --- 3. replay ----------------------------------------------------------------------

    def replay(self, name: str, api: ManagedProcess, capture: Path, span: float) -> dict[str, Any]:
        report = self.out / f"replay-{name}.json"
        report.unlink(missing_ok=True)
        metrics_url = f"{api.url}/metrics"
        before: Scrape = scrape(metrics_url)
        # The same window, read the way `hlthz diagnose --metrics` reads it (gauges sampled
        # every second in between), for the findings.
        window = ScrapeWindow(url_fetch(metrics_url), source=f"{name}: replay", interval=1.0)
        window.start()
        argv = [
            *hlthz_command(),
            "replay",
            "run",
            str(capture),
            "--target",
            api.url,
            "--allow-writes",
            "--speed",
            f"{self.size.speed:g}",
            "--report",
            str(report),
            "--name",
            name,
        ]
        expected = span / self.size.speed
        timeout = expected + 180.0
        with _progress(self.console) as progress:
            task = progress.add_task(f"replay against {name}", total=expected, detail="")
            proc = self.run.start(f"replay-{name}", argv)
            assert proc.popen is not None
            t0 = time.monotonic()
            while proc.popen.poll() is None and time.monotonic() - t0 < timeout:
                elapsed = time.monotonic() - t0
                detail = "" if elapsed <= expected else "waiting for the last responses"
                progress.update(task, completed=min(elapsed, expected), detail=detail)
                time.sleep(0.2)
            self.run.wait(proc, 1.0, f"the replay against {name}", waited=time.monotonic() - t0)
        after = scrape(metrics_url)
        limits, config = load_limits()
        diagnosis = diagnose_snapshot(build_snapshot(window.stop()), limits, config)
        server = server_delta(before, after, skip_routes=("/metrics", "/health"))
        for key, match in (("p95_ms", {}), ("order_post_p95_ms", _ORDER_POST)):
            p95 = histogram_quantile(before, after, 0.95, "http_request_duration_seconds", **match)
            server[key] = None if p95 is None else round(p95 * 1000.0, 2)
        return {
            "report": Report.load(report),
            "report_path": report,
            "server": server,
            "diagnosis": diagnosis,
        }

    def burst_phase(self, name: str, api: ManagedProcess) -> dict[str, Any]:
        """Many shoppers at once: concurrent large listings, judged in their own window."""
        metrics_url = f"{api.url}/metrics"
        window = ScrapeWindow(url_fetch(metrics_url), source=f"{name}: burst", interval=0.2)
        window.start()
        statuses = burst(api.url, size=self.size.burst, per_page=self.size.burst_per_page)
        snapshot = build_snapshot(window.stop())
        limits, config = load_limits()
        diagnosis = diagnose_snapshot(snapshot, limits, config)
        pools = snapshot.pools
        listing = f"{api.url}/api/products?per_page=20"
        return {
            "requests": sum(statuses.values()),
            "statuses": dict(statuses),
            "pool_max": max((p.capacity or 0.0 for p in pools), default=None),
            "pool_in_use_peak": max((p.in_use_peak or 0.0 for p in pools), default=None),
            "pool_waits": int(sum(p.waits or 0.0 for p in pools)),
            "pool_timeouts": int(sum(p.timeouts or 0.0 for p in pools)),
            "listing_bytes_plain": response_bytes(listing, gzip=False),
            "listing_bytes_gzip": response_bytes(listing, gzip=True),
            "diagnosis": diagnosis,
        }

    # --- 5. alerts and dashboards -------------------------------------------------------

    def generate_assets(self) -> dict[str, str]:
        alerts_out = self.out / "alerts"
        dashboards_out = self.out / "dashboards"
        self.step("generating the alert rules, routing, runbooks and dashboards")
        # The project's hlthz.yaml when there is one, else the packaged worked example; the
        # files go to the demo's own output folder either way.
        project = find_project(required=False)
        config = project.config if project else None
        generate_alerts(config, alerts_out)
        generate_dashboards(config, dashboards_out)
        return {"alerts": str(alerts_out), "dashboards": str(dashboards_out)}

    # --- the story ----------------------------------------------------------------------

    def tell(self) -> dict[str, Any]:
        check_optimizations(self.options.optimizations)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run.logs.mkdir(parents=True, exist_ok=True)
        self.console.rule(f"[bold]HLTHZ demo ({self.size.name})")
        seed_dir = self.seed()
        capture, traffic, records = self.record(seed_dir)
        span = self._capture_span(capture)

        self.step("starting [green]after[/] and a fresh [red]before[/] from the same data")
        runs: dict[str, dict[str, Any]] = {}
        for name in ("before", "after"):
            api = self.serve(name, name, seed_dir)
            self.step(f"replaying the {records} recorded requests against [bold]{name}[/]")
            runs[name] = self.replay(name, api, capture, span)
            self.step(
                f"a burst: {self.size.burst} shoppers open a listing page nobody asked for yet, "
                f"at the same instant, on [bold]{name}[/]"
            )
            runs[name]["burst"] = self.burst_phase(name, api)
            api.stop()
        singles: dict[str, dict[str, Any]] = {}
        for switch in self.options.optimizations:
            api = self.serve(f"only-{switch}", "before", seed_dir, "--opt", f"{switch}=on")
            self.step(f"replaying against [red]before[/] with only [bold]{switch}[/] on")
            run = self.replay(f"only-{switch}", api, capture, span)
            api.stop()
            singles[switch] = summarize_run(run["report"], run["server"])

        # The story shows the difference on any machine: a busy laptop's late generator is
        # said in the warnings instead of refusing the comparison (a CI gate would refuse it).
        comparison = compare_reports(
            runs["before"]["report"], runs["after"]["report"], GateOptions(allow=Allow(lag=True))
        )
        html = self.out / "report.html"
        comparison.write_html(html)

        summary: dict[str, Any] = {
            "hlthz_demo": 1,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "size": self.size.name,
            "before": summarize_run(runs["before"]["report"], runs["before"]["server"]),
            "after": summarize_run(runs["after"]["report"], runs["after"]["server"]),
            "diagnosis": {
                name: _diagnosis_json(runs[name]["diagnosis"], runs[name]["burst"]["diagnosis"])
                for name in ("before", "after")
            },
            "traffic": traffic.to_dict(),
            "capture": {"path": str(capture), "records": records, "span_s": round(span, 2)},
            "comparison": comparison.to_dict(),
        }
        for name in ("before", "after"):
            summary[name]["burst"] = {
                k: v for k, v in runs[name]["burst"].items() if k != "diagnosis"
            }
        summary["audit"] = audit_rows(summary["before"], summary["after"])
        summary["time_saved"] = time_saved_by_route(summary["before"], summary["after"])
        summary["optimizations"] = optimization_evidence(summary["before"], summary["after"])
        if singles:
            summary["single_switch"] = single_switch_rows(
                summary["before"], summary["after"], singles
            )
        summary["ratios"] = {
            key: _ratio(summary["before"][key], summary["after"][key])
            for key in ("p95_ms", "avg_ms", "order_post_p95_ms")
        }
        print_audit(self.console, summary)
        print_findings(self.console, summary["diagnosis"])
        for name in ("before", "after"):
            atomic_write(
                self.out / f"diagnosis-{name}.json",
                json.dumps(summary["diagnosis"][name], indent=2) + "\n",
            )
        summary["files"] = {
            "summary": str(self.out / "summary.json"),
            "report_html": str(html),
            "replay_before": str(runs["before"]["report_path"]),
            "replay_after": str(runs["after"]["report_path"]),
            "diagnosis_before": str(self.out / "diagnosis-before.json"),
            "diagnosis_after": str(self.out / "diagnosis-after.json"),
            "capture": str(capture),
            "logs": str(self.run.logs),
            **self.generate_assets(),
        }
        self._print_assets(summary["files"])
        return summary

    def _capture_span(self, capture: Path) -> float:
        first = last = None
        for record in read_capture(capture, skip_invalid=True):
            first = record.ts_ns if first is None else min(first, record.ts_ns)
            last = record.ts_ns if last is None else max(last, record.ts_ns)
        return 0.0 if first is None or last is None else (last - first) / 1e9

    def _print_assets(self, files: dict[str, str]) -> None:
        alerts, dashboards = Path(files["alerts"]), Path(files["dashboards"])
        self.console.print()
        self.console.print("[bold]Use them[/]")
        self.console.print(
            f"  Prometheus: add {alerts / 'generated' / 'hlthz.rules.yml'} to rule_files "
            "(or try it all with `hlthz stack up`)"
        )
        self.console.print(
            f"  Alertmanager: start from {alerts / 'generated' / 'alertmanager.yml'} and fill in "
            "the receivers"
        )
        self.console.print(f"  Runbooks: {alerts / 'runbooks'}")
        self.console.print(
            f"  Grafana, by file: {dashboards / 'provisioning' / 'hlthz-dashboards.yaml'} goes to "
            "/etc/grafana/provisioning/dashboards/, the JSON files beside it to "
            "/var/lib/grafana/dashboards/hlthz"
        )
        self.console.print(
            f"  Grafana, by hand: Dashboards > New > Import each of {dashboards}/*.json and pick "
            "your Prometheus data source"
        )


def run_demo(
    options: DemoOptions | None = None, *, console: Console | None = None
) -> dict[str, Any]:
    """Run the demo and return its summary (also written to ``OUT/summary.json``).

    Raises :class:`DemoError` (exit 1) when a piece of HLTHZ is missing or a step fails; every
    process the demo started is stopped before it returns or raises, also on Ctrl-C/SIGTERM.
    """
    options = options or DemoOptions()
    console = console or Console()
    demo = Demo(options, console)
    summary: dict[str, Any] | None = None
    try:
        with _sigterm_as_interrupt():
            summary = demo.tell()
    finally:
        demo.run.stop_all()
        # The per-instance database copies are large and of no use afterwards.
        shutil.rmtree(demo.work, ignore_errors=True)
        manifest = demo.run.manifest
        if demo.out.exists():
            # What ran, with pids, so anyone can check that nothing was left behind.
            atomic_write(demo.out / "processes.json", json.dumps(manifest, indent=2) + "\n")
        if summary is not None:
            summary["processes"] = manifest
            path = demo.out / "summary.json"
            atomic_write(path, json.dumps(summary, indent=2) + "\n")
            elapsed = time.monotonic() - demo.started
            console.print()
            console.print(f"[bold]Summary[/]  {path}")
            console.print(f"[bold]Report[/]   {summary['files']['report_html']}")
            console.print(f"done in {elapsed:.0f} s; every process the demo started is stopped")
    return summary
