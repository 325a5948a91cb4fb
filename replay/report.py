"""The replay report (v1, docs/formats.md): typed, with one reader and one writer.

:class:`Report` is what :func:`hlthz.replay.run_replay` returns, what ``compare``, the HTML
report, the terminal summary and the demo read. :meth:`Report.load` (a file) and
:meth:`Report.from_dict` (parsed JSON) are the only readers: they check every field they use and
refuse a damaged report in one line, ``FILE: routes[2].latency_ms.p95: must be a number, got
'slow'`` (:class:`~hlthz.errors.InputError`, exit 2). Keys they do not know are ignored, and a
key the format marks optional may be missing (its field is then ``None``, or empty for lists).
:meth:`Report.write` is the only writer (atomically, :func:`hlthz.files.atomic_write`).

:func:`build_report` turns the engine's measurements into a report; besides the required keys
it fills in:

- ``run``: what was replayed where and how (capture, target, speed/rate, workers, interrupted);
- ``summary.status_classes`` and ``summary.statuses``; ``summary.skipped_by_reason``;
  ``summary.concurrency`` and ``summary.cap_hits`` (requests that waited for a free slot);
  ``summary.generator_cpu`` (share of one core the engine's main process used);
- per route: ``method`` and ``path`` (the route template), ``service_time_ms``, ``statuses``,
  ``error_rate``, ``rps``;
- ``series``: per-second points for the HTML charts; ``histograms``: the HDR histograms
  (base64), so reports can be merged or re-analysed exactly;
- ``workers``: expected, finished, lost shard indexes and ``missing_share``;
- ``warnings``: sentences about anything that makes the numbers less trustworthy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from hlthz.errors import InputError
from hlthz.files import atomic_write
from hlthz.replay.live_metrics import status_class
from hlthz.replay.timing import Recorder, Reservoir, encode, percentiles_ms

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
    "build_report",
    "print_summary",
]

REPORT_VERSION = 1
_POINTS = (50, 90, 95, 99)
#: Schedule lag P99 above this (ms) means the generator, not the target, shaped the latency.
LAG_WARN_MS = 10.0
CPU_WARN = 0.9
#: A report larger than this is refused unread (a long run's report is a few MB).
MAX_REPORT_BYTES = 64 * 2**20
#: Counts above this are not counts (JSON integers are unbounded; int64 is plenty).
_MAX_COUNT = 2**63 - 1

T = TypeVar("T")


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
        return _Reader(source).report(data)

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
        return _Reader(name).report(data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    # Optional keys are left out when unknown (never written as null where the format says
    # object, string or number).
    if value is not None:
        out[key] = value


def _plain(mapping: Mapping[str, int] | None) -> dict[str, int] | None:
    return None if mapping is None else dict(mapping)


# -- the one reader ---------------------------------------------------------------------------


def _describe(value: object) -> str:
    """A short, bounded description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and abs(value) > 10**15:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """Checks parsed JSON against the report v1 format; every error names the field's path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(self.source, 0, f"{where}: {problem}")

    # -- scalars --

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object, got {_describe(value)}")
        return value

    def need(self, data: dict[str, Any], key: str, where: str) -> Any:
        if key not in data:
            raise self.fail(_join(where, key), "missing (a report v1 always has it)")
        return data[key]

    def count(self, value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, got {_describe(value)}")
        if not 0 <= value <= _MAX_COUNT:
            raise self.fail(where, f"must be an integer >= 0, got {_describe(value)}")
        return value

    def number(self, value: object, where: str, *, share: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"must be a number, got {_describe(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise self.fail(where, f"must be a finite number >= 0, got {_describe(value)}")
        if share and number > 1:
            raise self.fail(where, f"must be a share from 0 to 1, got {_describe(value)}")
        return number

    def text(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, got {_describe(value)}")
        return value

    def flag(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, got {_describe(value)}")
        return value

    def opt(
        self, data: dict[str, Any], key: str, where: str, read: Callable[[Any, str], T]
    ) -> T | None:
        """``read`` the key if present and not null, else ``None``."""
        value = data.get(key)
        return None if value is None else read(value, _join(where, key))

    def counts(self, value: object, where: str) -> dict[str, int]:
        data = self.obj(value, where)
        return {str(k): self.count(v, f"{where}.{k}") for k, v in data.items()}

    def items(self, value: object, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, got {_describe(value)}")
        return value

    # -- objects --

    def percentiles(self, value: object, where: str) -> Percentiles:
        data = self.obj(value, where)
        p = {k: self.number(self.need(data, k, where), f"{where}.{k}") for k in _PERCENTILES}
        return Percentiles(**p)

    def lag(self, value: object, where: str) -> LagPercentiles:
        data = self.obj(value, where)
        p = {k: self.number(self.need(data, k, where), f"{where}.{k}") for k in _LAG}
        return LagPercentiles(**p)

    def run(self, value: object, where: str) -> RunInfo:
        data = self.obj(value, where)
        number, text, flag, count = self.number, self.text, self.flag, self.count
        return RunInfo(
            name=self.opt(data, "name", where, text),
            capture=self.opt(data, "capture", where, text),
            target=self.opt(data, "target", where, text),
            speed=self.opt(data, "speed", where, number),
            rate=self.opt(data, "rate", where, number),
            duration=self.opt(data, "duration", where, number),
            loop=self.opt(data, "loop", where, flag),
            max_gap=self.opt(data, "max_gap", where, number),
            allow_writes=self.opt(data, "allow_writes", where, flag),
            concurrency=self.opt(data, "concurrency", where, count),
            workers=self.opt(data, "workers", where, count),
            started_at=self.opt(data, "started_at", where, text),
            interrupted=bool(self.opt(data, "interrupted", where, flag)),
            capture_fingerprint=self.opt(data, "capture_fingerprint", where, text),
            mode=self.opt(data, "mode", where, text),
            block=self.opt(data, "block", where, count),
            max_body=self.opt(data, "max_body", where, count),
            deadline=self.opt(data, "deadline", where, number),
        )

    def samples(self, value: object, where: str) -> Samples:
        data = self.obj(value, where)
        seen = self.count(self.need(data, "seen", where), f"{where}.seen")
        latency = self.values(self.need(data, "latency_ms", where), f"{where}.latency_ms")
        service = self.values(data.get("service_time_ms", []), f"{where}.service_time_ms")
        if len(latency) > seen:
            raise self.fail(f"{where}.latency_ms", f"holds {len(latency)} values, seen {seen}")
        digest = self.opt(data, "digest", where, self.text)
        return Samples(seen, latency, service, digest)

    def values(self, value: object, where: str) -> tuple[float, ...]:
        items = self.items(value, where)
        out = []
        for i, item in enumerate(items):
            # The fast path: a finite float or a small int; anything else says which.
            if type(item) is float and 0 <= item < 1e12:
                out.append(item)
            elif type(item) is int and 0 <= item < 10**12:
                out.append(float(item))
            else:
                number = self.number(item, f"{where}[{i}]")
                if number >= 1e12:
                    raise self.fail(f"{where}[{i}]", f"must be below 1e12 ms, got {number:g}")
                out.append(number)
        return tuple(out)

    def examples(self, value: object, where: str) -> dict[str, tuple[str, ...]]:
        data = self.obj(value, where)
        return {
            str(kind): tuple(
                self.text(v, f"{where}.{kind}[{i}]")
                for i, v in enumerate(self.items(paths, f"{where}.{kind}"))
            )
            for kind, paths in data.items()
        }

    def summary(self, value: object, where: str) -> Summary:
        data = self.obj(value, where)

        def need(key: str, read: Callable[[Any, str], T]) -> T:
            return read(self.need(data, key, where), _join(where, key))

        return Summary(
            requests=need("requests", self.count),
            errors=need("errors", self.count),
            error_rate=need("error_rate", self.share),
            skipped=need("skipped", self.count),
            duration_s=need("duration_s", self.number),
            rps=need("rps", self.number),
            latency_ms=need("latency_ms", self.percentiles),
            service_time_ms=need("service_time_ms", self.percentiles),
            schedule_lag_ms=need("schedule_lag_ms", self.lag),
            skipped_by_reason=self.opt(data, "skipped_by_reason", where, self.counts),
            status_classes=self.opt(data, "status_classes", where, self.counts),
            statuses=self.opt(data, "statuses", where, self.counts),
            concurrency=self.opt(data, "concurrency", where, self.count),
            cap_hits=self.opt(data, "cap_hits", where, self.count),
            generator_cpu=self.opt(data, "generator_cpu", where, self.number),
            failures=self.opt(data, "failures", where, self.counts),
            captured=self.opt(data, "captured", where, self.counts),
            samples=self.opt(data, "samples", where, self.samples),
        )

    def share(self, value: object, where: str) -> float:
        return self.number(value, where, share=True)

    def route(self, value: object, where: str) -> RouteReport:
        data = self.obj(value, where)
        key = self.text(self.need(data, "route", where), f"{where}.route")
        head, sep, tail = key.partition(" ")
        method = self.opt(data, "method", where, self.text)
        template = self.opt(data, "path", where, self.text)
        if method is None or template is None:
            # A report of the required keys only: the key is "METHOD route".
            if not sep or not head or not tail:
                raise self.fail(f"{where}.route", f"must be 'METHOD /route', got {_describe(key)}")
            method, template = method or head, template or tail
        if key != f"{method} {template}":
            raise self.fail(
                f"{where}.route",
                f"{_describe(key)} is not its method and path ({_describe(method)}, "
                f"{_describe(template)})",
            )

        def need(name: str, read: Callable[[Any, str], T]) -> T:
            return read(self.need(data, name, where), _join(where, name))

        return RouteReport(
            method=method,
            route=template,
            requests=need("requests", self.count),
            errors=need("errors", self.count),
            latency_ms=need("latency_ms", self.percentiles),
            error_rate=self.opt(data, "error_rate", where, self.share),
            rps=self.opt(data, "rps", where, self.number),
            service_time_ms=self.opt(data, "service_time_ms", where, self.percentiles),
            statuses=self.opt(data, "statuses", where, self.counts),
            status_classes=self.opt(data, "status_classes", where, self.counts),
            failures=self.opt(data, "failures", where, self.counts),
            captured=self.opt(data, "captured", where, self.counts),
            transitions=self.opt(data, "transitions", where, self.counts),
            examples=self.opt(data, "examples", where, self.examples),
            samples=self.opt(data, "samples", where, self.samples),
        )

    def point(self, value: object, where: str) -> SeriesPoint:
        # Only the second is needed; a point without a figure reads it as 0.
        data = self.obj(value, where)

        def count(key: str) -> int:
            return self.opt(data, key, where, self.count) or 0

        def ms(key: str) -> float:
            return self.opt(data, key, where, self.number) or 0.0

        return SeriesPoint(
            t=self.count(self.need(data, "t", where), f"{where}.t"),
            requests=count("requests"),
            errors=count("errors"),
            p50_ms=ms("p50_ms"),
            p95_ms=ms("p95_ms"),
            p99_ms=ms("p99_ms"),
            lag_max_ms=ms("lag_max_ms"),
        )

    def histograms(self, value: object, where: str) -> Histograms:
        data = self.obj(value, where)
        return Histograms(
            latency=self.opt(data, "latency", where, self.text),
            service_time=self.opt(data, "service_time", where, self.text),
            schedule_lag=self.opt(data, "schedule_lag", where, self.text),
        )

    def shard(self, value: object, where: str) -> Shard:
        data = self.obj(value, where)
        return Shard(
            index=self.count(self.need(data, "index", where), f"{where}.index"),
            sent=self.opt(data, "sent", where, self.count),
            latency_hdr=self.opt(data, "latency_hdr", where, self.text),
            shipped=self.opt(data, "shipped", where, self.count),
            unsent=self.opt(data, "unsent", where, self.count),
        )

    def workers(self, value: object, where: str) -> Workers:
        data = self.obj(value, where)

        def lost(items: Any, at: str) -> tuple[int, ...]:
            return tuple(self.count(v, f"{at}[{i}]") for i, v in enumerate(self.items(items, at)))

        def shards(items: Any, at: str) -> tuple[Shard, ...]:
            return tuple(self.shard(v, f"{at}[{i}]") for i, v in enumerate(self.items(items, at)))

        return Workers(
            expected=self.opt(data, "expected", where, self.count),
            finished=self.opt(data, "finished", where, self.count),
            lost=self.opt(data, "lost", where, lost),
            missing_share=self.opt(data, "missing_share", where, self.share),
            shards=self.opt(data, "shards", where, shards),
        )

    def report(self, value: object, *, nested: bool = False) -> Report:
        if not nested and (
            not isinstance(value, dict) or not _is_version(value.get("hlthz_report"))
        ):
            raise InputError(self.source, 0, 'not a replay report v1 (no "hlthz_report": 1)')
        if not isinstance(value, dict):
            raise self.fail("baseline", f"must be an object, got {_describe(value)}")
        baseline = None
        if not nested and value.get("baseline") is not None:
            baseline = _Reader(self.source + ": baseline").report(value["baseline"], nested=True)
        routes = self.items(self.need(value, "routes", ""), "routes")
        series = self.opt(value, "series", "", self.items) or []
        warnings = self.opt(value, "warnings", "", self.items) or []
        return Report(
            summary=self.summary(self.need(value, "summary", ""), "summary"),
            routes=tuple(self.route(r, f"routes[{i}]") for i, r in enumerate(routes)),
            run=self.opt(value, "run", "", self.run),
            series=tuple(self.point(p, f"series[{i}]") for i, p in enumerate(series)),
            histograms=self.opt(value, "histograms", "", self.histograms),
            workers=self.opt(value, "workers", "", self.workers),
            warnings=tuple(self.text(w, f"warnings[{i}]") for i, w in enumerate(warnings)),
            baseline=baseline,
        )


_PERCENTILES = ("p50", "p90", "p95", "p99", "max")
_LAG = ("p50", "p99", "max")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == REPORT_VERSION


# -- building a report from the engine's measurements -----------------------------------------


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
    reader = _Reader("the replay engine's result")
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
