"""From the engine's measurements to a :class:`~hlthz.replay.report.Report`.

:func:`build_report` turns the merged :class:`~hlthz.replay.timing.Recorder` and the engine's
result into a report; besides the required keys it fills in:

- ``run``: what was replayed where and how (capture, target, speed/rate, workers, interrupted);
- ``summary.status_classes`` and ``summary.statuses``; ``summary.skipped_by_reason``;
  ``summary.concurrency`` and ``summary.cap_hits`` (requests that waited for a free slot);
  ``summary.generator_cpu`` (share of one core the engine's main process used);
- per route: ``method`` and ``path`` (the route template), ``service_time_ms``, ``statuses``,
  ``error_rate``, ``rps``, and a sample of latencies in send order with its digest;
- ``series``: per-second points for the HTML charts; ``histograms``: the HDR histograms
  (base64), so reports can be merged or re-analysed exactly;
- ``workers``: expected, finished, lost shard indexes and ``missing_share``;
- ``warnings``: sentences about anything that makes the numbers less trustworthy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hlthz.replay._report_reader import ReportReader
from hlthz.replay.live_metrics import status_class
from hlthz.replay.report import (
    Histograms,
    LagPercentiles,
    Percentiles,
    Report,
    RouteReport,
    RunInfo,
    Samples,
    Summary,
)
from hlthz.replay.timing import Recorder, Reservoir, encode, percentiles_ms

__all__ = ["build_report"]

_POINTS = (50, 90, 95, 99)
#: Schedule lag P99 above this (ms) means the generator, not the target, shaped the latency.
LAG_WARN_MS = 10.0
#: A generator using more than this share of a core may be the bottleneck.
CPU_WARN = 0.9


def _percentiles(hist: Any) -> Percentiles:
    return Percentiles(**percentiles_ms(hist, _POINTS))


def _samples(reservoir: Reservoir) -> Samples:
    latency, service, seqs = reservoir.ordered()
    return Samples(
        reservoir.seen,
        tuple(round(v, 3) for v in latency),
        tuple(round(v, 3) for v in service),
        hashlib.blake2b(",".join(map(str, seqs)).encode(), digest_size=8).hexdigest(),
    )


def _classes(statuses: Mapping[str, int]) -> dict[str, int]:
    classes: Counter[str] = Counter()
    for status, count in statuses.items():
        classes[status_class(status)] += count
    return dict(sorted(classes.items()))


#: The shortest duration a rate is computed over (seconds): no division by a near-zero time.
MIN_DURATION_S = 0.001


def build_report(recorder: Recorder, result: Mapping[str, Any], run: RunInfo) -> Report:
    """The report of one run: ``recorder`` holds the merged measurements, ``result`` the engine's
    outcome (``elapsed_s``, ``cpu``, ``series``, ``workers``), ``run`` the settings to echo."""
    duration = max(float(result["elapsed_s"]), MIN_DURATION_S)
    requests, errors = recorder.requests, recorder.errors
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    captured: Counter[str] = Counter()
    routes = []
    for key in sorted(recorder.routes):
        stats = recorder.routes[key]
        statuses.update(stats.statuses)
        failures.update(stats.failures)
        captured.update(stats.captured)
        # Recorder keys are Routes.name(): "METHOD template" (or "METHOD {other}").
        method, _, template = key.partition(" ")
        routes.append(
            RouteReport(
                method=method,
                route=template,
                requests=stats.requests,
                errors=stats.errors,
                error_rate=stats.errors / stats.requests if stats.requests else 0.0,
                rps=stats.requests / duration,
                latency_ms=_percentiles(stats.latency),
                service_time_ms=_percentiles(stats.service),
                statuses=dict(sorted(stats.statuses.items())),
                status_classes=_classes(stats.statuses),
                failures=dict(sorted(stats.failures.items())),
                captured=dict(sorted(stats.captured.items())),
                transitions=dict(stats.transitions.most_common()),
                examples={k: tuple(v) for k, v in sorted(stats.examples.items())},
                samples=_samples(stats.samples),
            )
        )
    service = recorder.service  # summed over routes on demand
    summary = Summary(
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        skipped=sum(recorder.skipped.values()),
        skipped_by_reason=dict(recorder.skipped),
        duration_s=round(duration, 3),
        rps=requests / duration,
        latency_ms=_percentiles(recorder.latency),
        service_time_ms=_percentiles(service),
        schedule_lag_ms=LagPercentiles(**percentiles_ms(recorder.lag, (50, 99))),
        status_classes=_classes(statuses),
        statuses=dict(sorted(statuses.items())),
        concurrency=run.concurrency,
        cap_hits=recorder.cap_hits,
        generator_cpu=round(float(result.get("cpu", 0.0)), 3),
        failures=dict(sorted(failures.items())),
        captured=dict(sorted(captured.items())),
        samples=_samples(recorder.samples),
    )
    reader = ReportReader("the replay engine's result")
    workers = result.get("workers")
    if recorder.fingerprint is not None:
        run = replace(run, capture_fingerprint=recorder.fingerprint)
    report = Report(
        summary=summary,
        routes=tuple(routes),
        run=run,
        series=tuple(
            reader.point(p, f"series[{i}]") for i, p in enumerate(result.get("series", []))
        ),
        histograms=Histograms(
            latency=encode(recorder.latency),
            service_time=encode(service),
            schedule_lag=encode(recorder.lag),
        ),
        workers=None if workers is None else reader.workers(workers, "workers"),
    )
    return replace(report, warnings=tuple(_warnings(report) + _capture_warnings(recorder.notes)))


def _capture_warnings(notes: Mapping[str, int]) -> list[str]:
    """Warnings about the capture the engine read (:attr:`Recorder.notes`)."""
    out = []
    marked = {
        kind: notes.get(kind, 0) for kind in ("body_truncated", "body_unknown", "body_dropped")
    }
    if any(marked.values()):
        what = ", ".join(f"{n:,} {kind}" for kind, n in marked.items() if n)
        out.append(
            f"--allow-writes sent writes whose captured body is not the original ({what}): the "
            "target got shorter, empty or no bodies, and may have answered them differently"
        )
    if notes.get("out_of_order"):
        out.append(
            f"{notes['out_of_order']:,} records are earlier than the one before them in the "
            "capture; each was sent right after its predecessor (merge or re-import the capture "
            "to sort it)"
        )
    return out


def _warnings(report: Report) -> list[str]:
    summary, out = report.summary, []
    if report.interrupted:
        out.append("interrupted: this report covers only the part of the capture replayed")
    if summary.requests and summary.schedule_lag_ms.p99 > LAG_WARN_MS:
        out.append(
            f"the generator was late: schedule lag p99 {summary.schedule_lag_ms.p99:.1f} ms "
            f"(latency counts it honestly); use --workers N or a larger machine"
        )
    if (summary.generator_cpu or 0.0) > CPU_WARN:
        out.append(
            f"the generator used {summary.generator_cpu:.0%} of a CPU core: it may be the "
            f"bottleneck; use --workers N"
        )
    if summary.cap_hits:
        out.append(
            f"the concurrency cap ({summary.concurrency}) was reached {summary.cap_hits:,} "
            f"times: requests waited for a free slot; raise --concurrency if the target allows"
        )
    if summary.failures:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in summary.failures.items())
        out.append(f"transport failures: {kinds}")
    for route in report.routes:
        changed = (route.captured or {}).get("changed", 0)
        known = changed + (route.captured or {}).get("same", 0)
        if known and changed / known > 0.5:
            top = ", ".join(f"{k} x{v}" for k, v in list((route.transitions or {}).items())[:3])
            out.append(
                f"{route.key}: {changed / known:.0%} of the answers differ from the captured "
                f"status ({top})"
            )
    workers = report.workers
    if workers is not None and workers.lost:
        unsent = sum(shard.unsent or 0 for shard in workers.shards or ())
        out.append(
            f"{len(workers.lost)} of {workers.expected} workers were lost mid-run "
            f"(shards {list(workers.lost)}): about {workers.missing_share or 0.0:.0%} of the "
            f"capture is missing from this report"
            + (f" ({unsent:,} requests never sent)" if unsent else "")
        )
    return out
