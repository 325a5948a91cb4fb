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
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from hlthz.errors import ReplayError

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


def _value(entry: dict[str, Any], metric: str, duration: float) -> float:
    if metric == "error_rate":
        requests = entry.get("requests", 0)
        return float(
            entry.get("error_rate", entry.get("errors", 0) / requests if requests else 0.0)
        )
    if metric == "rps":
        if "rps" in entry:
            return float(entry["rps"])
        return entry.get("requests", 0) / duration if duration else 0.0
    if metric.startswith("service_"):
        return float(entry.get("service_time_ms", {}).get(metric.removeprefix("service_"), 0.0))
    return float(entry["latency_ms"][metric])


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

    base: dict[str, Any]
    candidate: dict[str, Any]
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

    def write_html(self, path: str | os.PathLike[str]) -> None:
        """The candidate's HTML report with the baseline overlaid and the gate results."""
        from hlthz.replay.html_report import write_html

        write_html(self.candidate, path, baseline=self.base, comparison=self.to_dict())

    def write_junit(self, path: str | os.PathLike[str]) -> None:
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
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(suite).write(target, encoding="utf-8", xml_declaration=True)

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


def _read(entry: dict[str, Any], metric: str, duration: float, side: str, scope: str) -> float:
    # Reports are user input (any JSON with "hlthz_report": 1 loads): a missing or non-numeric
    # field is a one-line error naming it, never a traceback.
    try:
        return _value(entry, metric, duration)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ReplayError(
            f"{side} report: {scope}: no numeric {_field(metric)}; compare reports written by "
            f"'hlthz replay run --report'"
        ) from None


def _judge(
    scope: str,
    gate: Gate,
    base: dict[str, Any],
    cand: dict[str, Any],
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
    base: dict[str, Any],
    candidate: dict[str, Any],
    *,
    fail_on: list[str] | tuple[str, ...] = DEFAULT_GATES,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Apply every gate of ``fail_on`` overall and per route; see the module doc."""
    gates = [Gate.parse(text) for text in fail_on]
    comparison = Comparison(base, candidate, gates, min_samples=min_samples)
    durations = (_duration(base, "baseline"), _duration(candidate, "candidate"))
    scopes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = [
        ("overall", base["summary"], candidate["summary"])
    ]
    base_routes = _routes(base, "baseline")
    cand_routes = _routes(candidate, "candidate")
    for route in sorted(base_routes.keys() | cand_routes.keys()):
        scopes.append((route, base_routes.get(route), cand_routes.get(route)))
    for scope, b, c in scopes:
        for gate in gates:
            if b is None or c is None:
                side = "baseline" if b is None else "candidate"
                note = f"not in the {side}"
                comparison.checks.append(Check(scope, gate.text, None, None, None, "missing", note))
                continue
            fewest = min(_requests(b, "baseline", scope), _requests(c, "candidate", scope))
            if fewest < min_samples:
                note = f"{fewest} requests < {min_samples}: too few to judge"
                comparison.checks.append(
                    Check(scope, gate.text, None, None, None, "insufficient", note)
                )
                continue
            comparison.checks.append(_judge(scope, gate, b, c, durations))
    return comparison


def _duration(report: dict[str, Any], side: str) -> float:
    try:
        return float(report["summary"]["duration_s"])
    except (KeyError, TypeError, ValueError):
        raise ReplayError(
            f"{side} report: summary has no numeric duration_s; compare reports written by "
            f"'hlthz replay run --report'"
        ) from None


def _routes(report: dict[str, Any], side: str) -> dict[str, dict[str, Any]]:
    routes = report["routes"]
    if not isinstance(routes, list) or not all(
        isinstance(r, dict) and isinstance(r.get("route"), str) for r in routes
    ):
        raise ReplayError(
            f"{side} report: 'routes' must be a list of objects with a 'route' name; compare "
            f"reports written by 'hlthz replay run --report'"
        )
    return {r["route"]: r for r in routes}


def _requests(entry: dict[str, Any], side: str, scope: str) -> int:
    try:
        return int(entry.get("requests", 0))
    except (TypeError, ValueError, AttributeError):
        raise ReplayError(f"{side} report: {scope}: 'requests' must be an integer") from None
