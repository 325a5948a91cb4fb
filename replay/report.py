"""The replay report (v1, docs/formats.md) and its terminal summary.

:func:`build_report` turns the engine's measurements into the report dict; the required keys
(docs/formats.md) are all there, and these are added:

- ``run``: what was replayed where and how (capture, target, speed/rate, workers, interrupted);
- ``summary.status_classes`` and ``summary.statuses``; ``summary.skipped_by_reason``;
  ``summary.concurrency`` and ``summary.cap_hits`` (requests that waited for a free slot);
  ``summary.generator_cpu`` (share of one core the engine's main process used);
- per route: ``method``, ``service_time_ms``, ``statuses``, ``error_rate``, ``rps``;
- ``series``: per-second points for the HTML charts; ``histograms``: the HDR histograms
  (base64), so reports can be merged or re-analysed exactly;
- ``workers``: expected, finished, lost shard indexes and ``missing_share``;
- ``warnings``: sentences about anything that makes the numbers less trustworthy.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hlthz.errors import ReplayError
from hlthz.replay.live_metrics import status_class
from hlthz.replay.timing import Recorder, encode, percentiles_ms

REPORT_VERSION = 1
_POINTS = (50, 90, 95, 99)
#: Schedule lag P99 above this (ms) means the generator, not the target, shaped the latency.
LAG_WARN_MS = 10.0
CPU_WARN = 0.9


def build_report(recorder: Recorder, result: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The report of one run: ``recorder`` holds the merged measurements, ``result`` the engine's
    outcome (``elapsed_s``, ``interrupted``, ``cpu``, ``series``, ``workers``), ``run`` the
    settings to echo."""
    duration = max(float(result["elapsed_s"]), 1e-9)
    requests, errors = recorder.requests, recorder.errors
    statuses: Counter[str] = Counter()
    routes = []
    for key in sorted(recorder.routes):
        stats = recorder.routes[key]
        statuses.update(stats.statuses)
        method, _, template = key.partition(" ")
        routes.append(
            {
                "route": key,
                "method": method,
                "path": template,
                "requests": stats.requests,
                "errors": stats.errors,
                "error_rate": stats.errors / stats.requests if stats.requests else 0.0,
                "rps": stats.requests / duration,
                "latency_ms": percentiles_ms(stats.latency, _POINTS),
                "service_time_ms": percentiles_ms(stats.service, _POINTS),
                "statuses": dict(sorted(stats.statuses.items())),
            }
        )
    classes: Counter[str] = Counter()
    for status, count in statuses.items():
        classes[status_class(status)] += count
    lag = percentiles_ms(recorder.lag, (50, 99))
    service = recorder.service  # summed over routes on demand
    summary = {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "skipped": sum(recorder.skipped.values()),
        "skipped_by_reason": dict(recorder.skipped),
        "duration_s": round(duration, 3),
        "rps": requests / duration,
        "latency_ms": percentiles_ms(recorder.latency, _POINTS),
        "service_time_ms": percentiles_ms(service, _POINTS),
        "schedule_lag_ms": lag,
        "status_classes": dict(sorted(classes.items())),
        "statuses": dict(sorted(statuses.items())),
        "concurrency": run.get("concurrency"),
        "cap_hits": recorder.cap_hits,
        "generator_cpu": round(float(result.get("cpu", 0.0)), 3),
    }
    report = {
        "hlthz_report": REPORT_VERSION,
        "run": {
            **run,
            "started_at": result.get("started_at"),
            "interrupted": result["interrupted"],
        },
        "summary": summary,
        "routes": routes,
        "series": result.get("series", []),
        "histograms": {
            "latency": encode(recorder.latency),
            "service_time": encode(service),
            "schedule_lag": encode(recorder.lag),
        },
        "workers": result.get("workers"),
        "warnings": [],
    }
    report["warnings"] = _warnings(report)
    return report


def _warnings(report: dict[str, Any]) -> list[str]:
    summary, out = report["summary"], []
    if report["run"].get("interrupted"):
        out.append("interrupted: this report covers only the part of the capture replayed")
    if summary["requests"] and summary["schedule_lag_ms"]["p99"] > LAG_WARN_MS:
        out.append(
            f"the generator was late: schedule lag p99 {summary['schedule_lag_ms']['p99']:.1f} ms "
            f"(latency counts it honestly); use --workers N or a larger machine"
        )
    if summary["generator_cpu"] > CPU_WARN:
        out.append(
            f"the generator used {summary['generator_cpu']:.0%} of a CPU core: it may be the "
            f"bottleneck; use --workers N"
        )
    if summary["cap_hits"]:
        out.append(
            f"the concurrency cap ({summary['concurrency']}) was reached {summary['cap_hits']:,} "
            f"times: requests waited for a free slot; raise --concurrency if the target allows"
        )
    workers = report.get("workers") or {}
    if workers.get("lost"):
        out.append(
            f"{len(workers['lost'])} of {workers['expected']} workers were lost mid-run "
            f"(shards {workers['lost']}): about {workers['missing_share']:.0%} of the capture "
            f"is missing from this report"
        )
    return out


def write_report(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``report`` as JSON (atomically: a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, target)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report v1 written by ``hlthz replay run --report``."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the report: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReplayError(
            f"{path}:{exc.lineno}: not JSON ({exc.msg}); pass a replay report"
        ) from None
    if not isinstance(data, dict) or data.get("hlthz_report") != REPORT_VERSION:
        raise ReplayError(f'{path}: not a replay report v1 (no "hlthz_report": 1)')
    for key in ("summary", "routes"):
        if key not in data:
            raise ReplayError(
                f"{path}: the report has no {key!r}; was it written by hlthz replay run?"
            )
    return data


def print_summary(report: dict[str, Any], *, file: Any = None) -> None:
    """A terminal summary on ``file`` (stdout): overall, the slowest routes, then warnings."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    s = report["summary"]
    head = Table(title="replay summary (latency in ms, from the scheduled time)")
    columns = ("requests", "err %", "skipped", "req/s", "p50", "p95", "p99", "max", "lag p99")
    for column in columns:
        head.add_column(column, justify="right")
    lat = s["latency_ms"]
    head.add_row(
        f"{s['requests']:,}",
        f"{s['error_rate']:.2%}",
        f"{s['skipped']:,}",
        f"{s['rps']:.1f}",
        f"{lat['p50']:.1f}",
        f"{lat['p95']:.1f}",
        f"{lat['p99']:.1f}",
        f"{lat['max']:.1f}",
        f"{s['schedule_lag_ms']['p99']:.2f}",
    )
    console.print(head)
    routes = sorted(report["routes"], key=lambda r: r["latency_ms"]["p95"], reverse=True)
    if routes:
        table = Table(title="slowest routes (P95)")
        for column in ("route", "requests", "err %", "p50", "p95", "p99", "service p95"):
            table.add_column(column, justify="left" if column == "route" else "right")
        for route in routes[:20]:
            table.add_row(
                route["route"],
                f"{route['requests']:,}",
                f"{route['errors'] / route['requests']:.1%}" if route["requests"] else "-",
                f"{route['latency_ms']['p50']:.1f}",
                f"{route['latency_ms']['p95']:.1f}",
                f"{route['latency_ms']['p99']:.1f}",
                f"{route['service_time_ms']['p95']:.1f}",
            )
        console.print(table)
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)
