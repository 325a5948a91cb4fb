"""The replay report (v1, docs/formats.md): typed, with one reader and one writer.

:class:`Report` is what :func:`hlthz.replay.run_replay` returns, what ``compare``, the HTML
report, the terminal summary and the demo read. :meth:`Report.load` (a file) and
:meth:`Report.from_dict` (parsed JSON) are the only readers
(:class:`~hlthz.replay._report_reader.ReportReader`): they check every field they use and
refuse a damaged report in one line, ``FILE: routes[2].latency_ms.p95: must be a number, got
'slow'`` (:class:`~hlthz.errors.InputError`, exit 2). Keys they do not know are ignored, and a
key the format marks optional may be missing (its field is then ``None``, or empty for lists).
:meth:`Report.write` is the only writer (atomically, :func:`hlthz.files.atomic_write`).
:func:`hlthz.replay.build.build_report` makes a report of the engine's measurements;
:func:`print_summary` shows one in the terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hlthz.errors import InputError
from hlthz.files import atomic_write

__all__ = [
    "REPORT_VERSION",
    "LagPercentiles",
    "Percentiles",
    "Report",
    "RouteReport",
    "RunInfo",
    "Samples",
    "SeriesPoint",
    "Shard",
    "Summary",
    "Workers",
    "print_summary",
]

REPORT_VERSION = 1
#: A report larger than this is refused unread (a long run's report is a few MB).
MAX_REPORT_BYTES = 64 * 2**20


# -- the report's parts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in milliseconds (``latency_ms``, ``service_time_ms``)."""

    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    def value(self, name: str) -> float:
        """The percentile called ``name`` (``"p95"``, ``"max"``)."""
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p90": self.p90, "p95": self.p95, "p99": self.p99, "max": self.max}


@dataclass(frozen=True)
class LagPercentiles:
    """Schedule lag percentiles in milliseconds (``schedule_lag_ms``)."""

    p50: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p99": self.p99, "max": self.max}


@dataclass(frozen=True)
class Samples:
    """A uniform sample of the requests' latencies (``samples``): ``seen`` requests, of which
    ``latency_ms`` and ``service_time_ms`` keep at most a few thousand, in send order (the
    gate's statistics read them; docs/gate.md). ``digest`` names which requests they are: two
    samples with the same digest hold the same requests in the same order (the two sides of
    an interleaved replay), so the gate can pair them request by request."""

    seen: int
    latency_ms: tuple[float, ...]
    service_time_ms: tuple[float, ...] = ()
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seen": self.seen,
            "latency_ms": list(self.latency_ms),
            "service_time_ms": list(self.service_time_ms),
        }
        _put(out, "digest", self.digest)
        return out


@dataclass(frozen=True)
class RunInfo:
    """What was replayed, where and how (``run``). ``None``: the report does not say."""

    name: str | None = None
    capture: str | None = None
    target: str | None = None
    speed: float | None = None
    rate: float | None = None
    duration: float | None = None
    loop: bool | None = None
    max_gap: float | None = None
    allow_writes: bool | None = None
    concurrency: int | None = None
    workers: int | None = None
    started_at: str | None = None
    interrupted: bool = False
    capture_fingerprint: str | None = None
    mode: str | None = None
    block: int | None = None
    max_body: int | None = None
    deadline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "name", self.name)
        _put(out, "capture", self.capture)
        _put(out, "target", self.target)
        _put(out, "speed", self.speed)
        out["rate"] = self.rate  # null: the captured timing was used
        out["duration"] = self.duration
        _put(out, "loop", self.loop)
        out["max_gap"] = self.max_gap
        _put(out, "allow_writes", self.allow_writes)
        _put(out, "concurrency", self.concurrency)
        _put(out, "workers", self.workers)
        _put(out, "started_at", self.started_at)
        out["interrupted"] = self.interrupted
        _put(out, "capture_fingerprint", self.capture_fingerprint)
        _put(out, "mode", self.mode)
        _put(out, "block", self.block)
        _put(out, "max_body", self.max_body)
        _put(out, "deadline", self.deadline)
        return out


@dataclass(frozen=True)
class Summary:
    """The whole run (``summary``). The optional fields are ``None`` when a report lacks them."""

    requests: int
    errors: int
    error_rate: float
    skipped: int
    duration_s: float
    rps: float
    latency_ms: Percentiles
    service_time_ms: Percentiles
    schedule_lag_ms: LagPercentiles
    skipped_by_reason: Mapping[str, int] | None = None
    status_classes: Mapping[str, int] | None = None
    statuses: Mapping[str, int] | None = None
    concurrency: int | None = None
    cap_hits: int | None = None
    generator_cpu: float | None = None
    failures: Mapping[str, int] | None = None
    captured: Mapping[str, int] | None = None
    samples: Samples | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "skipped": self.skipped,
        }
        _put(out, "skipped_by_reason", _plain(self.skipped_by_reason))
        out.update(
            duration_s=self.duration_s,
            rps=self.rps,
            latency_ms=self.latency_ms.to_dict(),
            service_time_ms=self.service_time_ms.to_dict(),
            schedule_lag_ms=self.schedule_lag_ms.to_dict(),
        )
        _put(out, "status_classes", _plain(self.status_classes))
        _put(out, "statuses", _plain(self.statuses))
        _put(out, "concurrency", self.concurrency)
        _put(out, "cap_hits", self.cap_hits)
        _put(out, "generator_cpu", self.generator_cpu)
        _put(out, "failures", _plain(self.failures))
        _put(out, "captured", _plain(self.captured))
        if self.samples is not None:
            out["samples"] = self.samples.to_dict()
        return out


@dataclass(frozen=True)
class RouteReport:
    """One route (an item of ``routes``): ``method`` and ``route`` (the template, the JSON's
    ``path``) apart, and :attr:`key` (``"GET /api/products/{id}"``, the JSON's ``route``)."""

    method: str
    route: str
    requests: int
    errors: int
    latency_ms: Percentiles
    error_rate: float | None = None
    rps: float | None = None
    service_time_ms: Percentiles | None = None
    statuses: Mapping[str, int] | None = None
    status_classes: Mapping[str, int] | None = None
    failures: Mapping[str, int] | None = None
    captured: Mapping[str, int] | None = None
    transitions: Mapping[str, int] | None = None
    examples: Mapping[str, tuple[str, ...]] | None = None
    samples: Samples | None = None

    @property
    def key(self) -> str:
        """``METHOD route``: how reports, compare, diff and the live metrics name the route."""
        return f"{self.method} {self.route}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "route": self.key,
            "method": self.method,
            "path": self.route,
            "requests": self.requests,
            "errors": self.errors,
        }
        _put(out, "error_rate", self.error_rate)
        _put(out, "rps", self.rps)
        out["latency_ms"] = self.latency_ms.to_dict()
        if self.service_time_ms is not None:
            out["service_time_ms"] = self.service_time_ms.to_dict()
        _put(out, "statuses", _plain(self.statuses))
        _put(out, "status_classes", _plain(self.status_classes))
        _put(out, "failures", _plain(self.failures))
        _put(out, "captured", _plain(self.captured))
        _put(out, "transitions", _plain(self.transitions))
        if self.examples is not None:
            out["examples"] = {kind: list(paths) for kind, paths in self.examples.items()}
        if self.samples is not None:
            out["samples"] = self.samples.to_dict()
        return out


@dataclass(frozen=True)
class SeriesPoint:
    """One second of the timeline (an item of ``series``)."""

    t: int
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    lag_max_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "lag_max_ms": self.lag_max_ms,
        }


@dataclass(frozen=True)
class Histograms:
    """The run's HDR histograms, HdrHistogram's base64 text (``hlthz.replay.timing.decode``)."""

    latency: str | None = None
    service_time: str | None = None
    schedule_lag: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "latency", self.latency)
        _put(out, "service_time", self.service_time)
        _put(out, "schedule_lag", self.schedule_lag)
        return out


@dataclass(frozen=True)
class Shard:
    """One worker's shard: ``sent`` and its latency histogram are ``None`` when it was lost;
    ``shipped`` requests the master streamed to it, ``unsent`` those its loss kept from it."""

    index: int
    sent: int | None = None
    latency_hdr: str | None = None
    shipped: int | None = None
    unsent: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "sent": self.sent,
            "latency_hdr": self.latency_hdr,
        }
        _put(out, "shipped", self.shipped)
        _put(out, "unsent", self.unsent)
        return out


@dataclass(frozen=True)
class Workers:
    """A distributed run's workers (``workers``)."""

    expected: int | None = None
    finished: int | None = None
    lost: tuple[int, ...] | None = None
    missing_share: float | None = None
    shards: tuple[Shard, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "expected", self.expected)
        _put(out, "finished", self.finished)
        _put(out, "lost", None if self.lost is None else list(self.lost))
        _put(out, "missing_share", self.missing_share)
        _put(out, "shards", None if self.shards is None else [s.to_dict() for s in self.shards])
        return out


@dataclass(frozen=True)
class Report:
    """A replay report v1. ``run``, ``histograms`` and ``workers`` are ``None`` when absent
    (``workers`` is also ``None`` for a single-process run)."""

    summary: Summary
    routes: tuple[RouteReport, ...]
    run: RunInfo | None = None
    series: tuple[SeriesPoint, ...] = ()
    histograms: Histograms | None = None
    workers: Workers | None = None
    warnings: tuple[str, ...] = ()
    #: An interleaved replay's baseline side (the report itself is the candidate's side).
    baseline: Report | None = None

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C stopped the run (the report covers what was sent)."""
        return self.run is not None and self.run.interrupted

    def route(self, method: str, route: str) -> RouteReport | None:
        """The entry of ``method`` (any case) and the route template ``route``, if any."""
        method = method.upper()
        for entry in self.routes:
            if entry.route == route and entry.method.upper() == method:
                return entry
        return None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-friendly data, keys in the documented order."""
        out: dict[str, Any] = {"hlthz_report": REPORT_VERSION}
        if self.run is not None:
            out["run"] = self.run.to_dict()
        out["summary"] = self.summary.to_dict()
        out["routes"] = [route.to_dict() for route in self.routes]
        out["series"] = [point.to_dict() for point in self.series]
        if self.histograms is not None:
            out["histograms"] = self.histograms.to_dict()
        out["workers"] = None if self.workers is None else self.workers.to_dict()
        out["warnings"] = list(self.warnings)
        if self.baseline is not None:
            inner = self.baseline.to_dict()
            inner.pop("hlthz_report", None)
            out["baseline"] = inner
        return out

    def write(self, path: str | os.PathLike[str], *, what: str | None = None) -> None:
        """Write the report as indented JSON, atomically (a reader never sees half of it).
        ``what`` (an option or parameter name) turns an OS error into one line naming it."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        atomic_write(path, text, what=what)

    @classmethod
    def from_dict(cls, data: object, *, source: str = "report") -> Report:
        """Check parsed JSON and build the report; ``source`` (a file name, ``"baseline
        report"``) starts every error: ``SOURCE: summary.requests: must be an integer, got
        'many'``."""
        return _read(source, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read and check a report v1 written by ``hlthz replay run --report``."""
        name = str(path)
        try:
            with open(path, "rb") as handle:
                # Refused before reading when the size is known; bounded either way (a pipe).
                too_big = os.fstat(handle.fileno()).st_size > MAX_REPORT_BYTES
                raw = b"" if too_big else handle.read(MAX_REPORT_BYTES + 1)
        except OSError as exc:
            raise InputError(name, 0, f"cannot read the report ({exc.strerror or exc})") from None
        if too_big or len(raw) > MAX_REPORT_BYTES:
            raise InputError(
                name, 0, f"larger than {MAX_REPORT_BYTES // 2**20} MiB; is this a replay report?"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(name, 0, "not UTF-8 text; pass a replay report (JSON)") from None
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise InputError(
                name, exc.lineno, f"not JSON ({exc.msg}); pass a replay report"
            ) from None
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:80]
            raise InputError(name, 0, f"not a replay report ({reason})") from None
        return _read(name, data)


def _read(source: str, data: object) -> Report:
    # Imported here: the reader builds this module's types, so it imports this module.
    from hlthz.replay._report_reader import ReportReader

    return ReportReader(source).report(data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    # Optional keys are left out when unknown (never written as null where the format says
    # object, string or number).
    if value is not None:
        out[key] = value


def _plain(mapping: Mapping[str, int] | None) -> dict[str, int] | None:
    return None if mapping is None else dict(mapping)


# -- the terminal summary ---------------------------------------------------------------------


def print_summary(report: Report, *, file: Any = None) -> None:
    """A terminal summary on ``file`` (stdout): overall, the slowest routes, then warnings."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    s = report.summary
    head = Table(title="replay summary (latency in ms, from the scheduled time)")
    columns = ("requests", "err %", "skipped", "req/s", "p50", "p95", "p99", "max", "lag p99")
    for column in columns:
        head.add_column(column, justify="right")
    lat = s.latency_ms
    head.add_row(
        f"{s.requests:,}",
        f"{s.error_rate:.2%}",
        f"{s.skipped:,}",
        f"{s.rps:.1f}",
        f"{lat.p50:.1f}",
        f"{lat.p95:.1f}",
        f"{lat.p99:.1f}",
        f"{lat.max:.1f}",
        f"{s.schedule_lag_ms.p99:.2f}",
    )
    console.print(head)
    routes = sorted(report.routes, key=lambda r: r.latency_ms.p95, reverse=True)
    if routes:
        table = Table(title="slowest routes (P95)")
        for column in ("route", "requests", "err %", "p50", "p95", "p99", "service p95"):
            table.add_column(column, justify="left" if column == "route" else "right")
        for route in routes[:20]:
            service = route.service_time_ms
            table.add_row(
                route.key,
                f"{route.requests:,}",
                f"{route.errors / route.requests:.1%}" if route.requests else "-",
                f"{route.latency_ms.p50:.1f}",
                f"{route.latency_ms.p95:.1f}",
                f"{route.latency_ms.p99:.1f}",
                "-" if service is None else f"{service.p95:.1f}",
            )
        console.print(table)
    odd = [r for r in report.routes if r.failures or set(r.status_classes or {}) - {"2xx", "3xx"}]
    if odd:
        answers = Table(title="answers other than 2xx/3xx (examples: captured paths, redacted)")
        for column in ("route", "status classes", "failures", "vs capture", "examples"):
            answers.add_column(column)
        for route in odd[:20]:
            answers.add_row(
                route.key,
                " ".join(f"{k} {n:,}" for k, n in (route.status_classes or {}).items()),
                " ".join(f"{k} {n:,}" for k, n in (route.failures or {}).items()),
                " ".join(f"{k} x{n:,}" for k, n in list((route.transitions or {}).items())[:3]),
                "; ".join(
                    f"{k}: {' '.join(paths[:2])}"
                    for k, paths in list((route.examples or {}).items())[:3]
                ),
            )
        console.print(answers)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)
