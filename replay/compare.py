"""The release gate: compare a candidate replay report with a baseline, per route and overall.

A gate is ``METRIC OP VALUE``:

- ``METRIC``: ``p50``, ``p90``, ``p95``, ``p99``, ``max`` (latency from the scheduled time, ms),
  ``service_p50`` .. ``service_max`` (from the actual send), ``error_rate``, ``rps``;
- ``OP``: ``>``, ``>=``, ``<``, ``<=``;
- ``VALUE``: a signed percentage is a change relative to the baseline (``p95 > +10%``: the P95
  grew by more than 10 %; ``rps < -5%``: throughput fell by more than 5 %); anything else is an
  absolute limit on the candidate: ``800ms``, ``1.5s``, ``1%`` (a ratio, for ``error_rate``) or a
  bare number in the metric's unit (ms, ratio, requests/s).

A gate *fails* when the candidate satisfies the expression. A route with fewer than
``min_samples`` requests on either side is reported as ``insufficient``, not judged: a P95 of a
handful of requests is noise. Routes present on one side only are listed, not judged.

Both sides are :class:`~hlthz.replay.report.Report` objects, checked when they were read
(:meth:`Report.load`), so a gate reads typed fields; only a figure the format lets a report leave
out (a route's ``service_time_ms``) can still be missing, and that is one line naming it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from hlthz.errors import ReplayError
from hlthz.files import atomic_write
from hlthz.replay.report import Report, RouteReport, Summary

DEFAULT_GATES = ("p95 > +10%", "p99 > +20%", "error_rate > 1%")
DEFAULT_MIN_SAMPLES = 20
_LATENCY = ("p50", "p90", "p95", "p99", "max")
METRICS = (*_LATENCY, *(f"service_{p}" for p in _LATENCY), "error_rate", "rps")
_EXPR = re.compile(
    r"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>%|ms|s)?\s*$"
)
_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Gate:
    """One parsed gate expression. ``relative``: ``limit`` is a change ratio (0.1 = +10 %)."""

    text: str
    metric: str
    op: str
    limit: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Gate:
        """Parse ``'p95 > +10%'``; raise :class:`ReplayError` saying what is wrong."""
        match = _EXPR.match(text)
        if match is None:
            raise ReplayError(
                f"--fail-on {text!r}: write METRIC OP VALUE, e.g. 'p95 > +10%', 'p99 > 800ms', "
                f"'error_rate > 1%', 'rps < -5%'"
            )
        metric, op, raw, unit = match["metric"], match["op"], match["value"], match["unit"]
        if metric not in METRICS:
            raise ReplayError(
                f"--fail-on {text!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}"
            )
        value = float(raw)
        signed = raw[0] in "+-"
        if unit == "%" and signed:
            return cls(text, metric, op, value / 100, True)
        latency = metric not in ("error_rate", "rps")
        if unit == "%":
            if metric != "error_rate":
                raise ReplayError(
                    f"--fail-on {text!r}: an absolute percentage applies to error_rate only; "
                    f"write a relative change with a sign ('+10%')"
                )
            value /= 100
        elif unit in ("ms", "s"):
            if not latency:
                raise ReplayError(f"--fail-on {text!r}: {metric} is not a time; drop the unit")
            value = value * 1000 if unit == "s" else value
        return cls(text, metric, op, value, False)


def _value(entry: Summary | RouteReport, metric: str, duration: float) -> float | None:
    """``metric`` of a summary or a route; ``None`` when the report left that figure out."""
    if metric == "error_rate":
        if entry.error_rate is not None:
            return entry.error_rate
        return entry.errors / entry.requests if entry.requests else 0.0
    if metric == "rps":
        if entry.rps is not None:
            return entry.rps
        return entry.requests / duration if duration else 0.0
    if metric.startswith("service_"):
        service = entry.service_time_ms
        return None if service is None else service.value(metric.removeprefix("service_"))
    return entry.latency_ms.value(metric)


@dataclass
class Check:
    """One gate applied to one scope (``overall`` or a route)."""

    scope: str
    gate: str
    base: float | None
    candidate: float | None
    change: float | None
    status: str  # pass | fail | insufficient | missing
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        change = self.change
        if change is not None and not math.isfinite(change):
            change = None  # JSON has no infinity; the note says "from zero"
        return {
            "scope": self.scope,
            "gate": self.gate,
            "base": self.base,
            "candidate": self.candidate,
            "change": change,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Comparison:
    """The outcome of :func:`compare_reports`. ``failed`` is true when any check failed."""

    base: Report
    candidate: Report
    gates: list[Gate]
    checks: list[Check] = field(default_factory=list)
    min_samples: int = DEFAULT_MIN_SAMPLES

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for check in self.checks:
            counts[check.status] = counts.get(check.status, 0) + 1
        return {
            "hlthz_comparison": 1,
            "failed": self.failed,
            "gates": [gate.text for gate in self.gates],
            "min_samples": self.min_samples,
            "counts": counts,
            "checks": [check.to_dict() for check in self.checks],
        }

    def write_html(self, path: str | os.PathLike[str], *, what: str | None = None) -> None:
        """The candidate's HTML report with the baseline overlaid and the gate results.
        ``what`` (an option name) turns an OS error into one line naming it."""
        from hlthz.replay.html_report import write_html

        write_html(self.candidate, path, baseline=self.base, comparison=self.to_dict(), what=what)

    def junit(self) -> bytes:
        """JUnit XML: one test case per (scope, gate); insufficient samples are skipped."""
        suite = ET.Element(
            "testsuite",
            name="hlthz.replay.compare",
            tests=str(len(self.checks)),
            failures=str(len(self.failures)),
            skipped=str(sum(c.status in ("insufficient", "missing") for c in self.checks)),
        )
        for check in self.checks:
            case = ET.SubElement(suite, "testcase", classname=check.scope, name=check.gate)
            if check.status == "fail":
                failure = ET.SubElement(case, "failure", message=_describe(check))
                failure.text = _describe(check)
            elif check.status in ("insufficient", "missing"):
                ET.SubElement(case, "skipped", message=check.note)
        return ET.tostring(suite, encoding="utf-8", xml_declaration=True)

    def write_junit(self, path: str | os.PathLike[str], *, what: str | None = None) -> None:
        """Write :meth:`junit` atomically; ``what`` as for :meth:`write_html`."""
        atomic_write(path, self.junit(), what=what)

    def summary_lines(self) -> list[str]:
        """One line per failed or unjudged check, then a verdict."""
        lines = [f"FAIL {_describe(c)}" for c in self.failures]
        lines += [
            f"skip {c.scope}: {c.gate}: {c.note}" for c in self.checks if c.status == "insufficient"
        ]
        judged = sum(c.status in ("pass", "fail") for c in self.checks)
        verdict = "FAILED" if self.failed else "passed"
        lines.append(f"gate {verdict}: {len(self.failures)} of {judged} checks failed")
        return lines


def _describe(check: Check) -> str:
    change = ""
    if check.change is not None:
        change = " (from zero)" if not math.isfinite(check.change) else f" ({check.change:+.1%})"
    return (
        f"{check.scope}: {check.gate}: base {check.base:g} -> candidate {check.candidate:g}{change}"
    )


def _field(metric: str) -> str:
    if metric in ("error_rate", "rps"):
        return metric
    if metric.startswith("service_"):
        return f"service_time_ms.{metric.removeprefix('service_')}"
    return f"latency_ms.{metric}"


def _read(
    entry: Summary | RouteReport, metric: str, duration: float, side: str, scope: str
) -> float:
    value = _value(entry, metric, duration)
    if value is None:
        raise ReplayError(
            f"{side} report: {scope}: no {_field(metric)}; a gate on {metric} needs reports "
            f"written by 'hlthz replay run --report'"
        )
    return value


def _judge(
    scope: str,
    gate: Gate,
    base: Summary | RouteReport,
    cand: Summary | RouteReport,
    durations: tuple[float, float],
) -> Check:
    b = _read(base, gate.metric, durations[0], "baseline", scope)
    c = _read(cand, gate.metric, durations[1], "candidate", scope)
    # From zero, any growth is infinite: a relative gate then fails on any new latency/errors.
    change = (c - b) / b if b else (0.0 if c == 0 else math.copysign(math.inf, c))
    subject = change if gate.relative else c
    failed = _OPS[gate.op](subject, gate.limit)
    return Check(scope, gate.text, round(b, 6), round(c, 6), change, "fail" if failed else "pass")


def compare_reports(
    base: Report,
    candidate: Report,
    *,
    fail_on: list[str] | tuple[str, ...] = DEFAULT_GATES,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Apply every gate of ``fail_on`` overall and per route; see the module doc."""
    gates = [Gate.parse(text) for text in fail_on]
    comparison = Comparison(base, candidate, gates, min_samples=min_samples)
    durations = (base.summary.duration_s, candidate.summary.duration_s)
    scopes: list[tuple[str, Summary | RouteReport | None, Summary | RouteReport | None]] = [
        ("overall", base.summary, candidate.summary)
    ]
    base_routes = {route.key: route for route in base.routes}
    cand_routes = {route.key: route for route in candidate.routes}
    for key in sorted(base_routes.keys() | cand_routes.keys()):
        scopes.append((key, base_routes.get(key), cand_routes.get(key)))
    for scope, b, c in scopes:
        for gate in gates:
            if b is None or c is None:
                side = "baseline" if b is None else "candidate"
                note = f"not in the {side}"
                comparison.checks.append(Check(scope, gate.text, None, None, None, "missing", note))
                continue
            fewest = min(b.requests, c.requests)
            if fewest < min_samples:
                note = f"{fewest} requests < {min_samples}: too few to judge"
                comparison.checks.append(
                    Check(scope, gate.text, None, None, None, "insufficient", note)
                )
                continue
            comparison.checks.append(_judge(scope, gate, b, c, durations))
    return comparison
