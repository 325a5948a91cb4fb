"""The one reader of the replay report v1 (docs/formats.md).

:meth:`hlthz.replay.report.Report.load` and :meth:`~hlthz.replay.report.Report.from_dict` read
through :class:`ReportReader`: it checks every field the report's types hold and refuses a damaged
report in one line naming the file and the field's path, ``FILE: routes[2].latency_ms.p95: must
be a number, got 'slow'`` (:class:`~hlthz.errors.InputError`, exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from hlthz.errors import InputError
from hlthz.replay.report import (
    REPORT_VERSION,
    Histograms,
    LagPercentiles,
    Percentiles,
    Report,
    RouteReport,
    RunInfo,
    Samples,
    SeriesPoint,
    Shard,
    Summary,
    Workers,
)

__all__ = ["ReportReader"]

#: Counts above this are not counts (JSON integers are unbounded; int64 is plenty).
_MAX_COUNT = 2**63 - 1
T = TypeVar("T")


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


class ReportReader:
    """Checks parsed JSON against the report v1 format; every error names the field's path.

    ``source`` (a file name) starts every error. Its methods read one part each, so the
    engine's own result (``point``, ``workers``) is read by the same checks as a file."""

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

    def req(self, data: dict[str, Any], key: str, where: str, read: Callable[[Any, str], T]) -> T:
        """``read`` the key, which a report v1 always has."""
        return read(self.need(data, key, where), _join(where, key))

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
        p = {k: self.req(data, k, where, self.number) for k in _PERCENTILES}
        return Percentiles(**p)

    def lag(self, value: object, where: str) -> LagPercentiles:
        data = self.obj(value, where)
        p = {k: self.req(data, k, where, self.number) for k in _LAG}
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
        seen = self.req(data, "seen", where, self.count)
        latency = self.req(data, "latency_ms", where, self.values)
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
        return Summary(
            requests=self.req(data, "requests", where, self.count),
            errors=self.req(data, "errors", where, self.count),
            error_rate=self.req(data, "error_rate", where, self.share),
            skipped=self.req(data, "skipped", where, self.count),
            duration_s=self.req(data, "duration_s", where, self.number),
            rps=self.req(data, "rps", where, self.number),
            latency_ms=self.req(data, "latency_ms", where, self.percentiles),
            service_time_ms=self.req(data, "service_time_ms", where, self.percentiles),
            schedule_lag_ms=self.req(data, "schedule_lag_ms", where, self.lag),
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
        key = self.req(data, "route", where, self.text)
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

        return RouteReport(
            method=method,
            route=template,
            requests=self.req(data, "requests", where, self.count),
            errors=self.req(data, "errors", where, self.count),
            latency_ms=self.req(data, "latency_ms", where, self.percentiles),
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
            t=self.req(data, "t", where, self.count),
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
            index=self.req(data, "index", where, self.count),
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
            baseline = ReportReader(self.source + ": baseline").report(
                value["baseline"], nested=True
            )
        routes = self.req(value, "routes", "", self.items)
        series = self.opt(value, "series", "", self.items) or []
        warnings = self.opt(value, "warnings", "", self.items) or []
        return Report(
            summary=self.req(value, "summary", "", self.summary),
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
