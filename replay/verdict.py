"""The outcome of ``replay compare``: a :class:`Check` per gate and scope, and the
:class:`Comparison` that holds them, with its JSON (docs/formats.md), JUnit XML, HTML and the
lines the terminal shows. :func:`hlthz.replay.compare.compare_reports` makes it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from hlthz.files import atomic_write
from hlthz.replay.gates import DEFAULT_MIN_SAMPLES, Gate, GateOptions
from hlthz.replay.report import Report

__all__ = ["COMPARISON_VERSION", "Check", "Comparison"]

#: The comparison's JSON format (docs/formats.md).
COMPARISON_VERSION = 2


@dataclass
class Check:
    """One gate applied to one scope (``overall`` or a route).

    ``base``, ``candidate``: the two values in the metric's unit; ``change``: relative to the
    baseline; ``low``/``high``: the one-sided 95 % bounds of that change (relative for a
    relative gate, in the metric's unit otherwise); ``p``: the p-value of "no change for the
    worse", ``p_adjusted`` after the correction across checks; ``detectable``: for an
    inconclusive check, the smallest change (relative for a relative gate) it could have
    detected; ``method``: ``bootstrap``, ``binomial``, ``chi-square`` or ``figures``."""

    scope: str
    gate: str
    base: float | None
    candidate: float | None
    change: float | None
    status: str  # pass | fail | inconclusive | insufficient | missing
    note: str = ""
    low: float | None = None
    high: float | None = None
    p: float | None = None
    p_adjusted: float | None = None
    detectable: float | None = None
    method: str = ""

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
            "low": _finite(self.low),
            "high": _finite(self.high),
            "p": _finite(self.p),
            "p_adjusted": _finite(self.p_adjusted),
            "detectable": _finite(self.detectable),
            "method": self.method,
        }


def _finite(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


@dataclass
class Comparison:
    """The outcome of :func:`compare_reports`. ``failed`` is true when any check failed;
    ``judged`` is false when no check could pass or fail (the CLI then exits 2)."""

    base: Report
    candidate: Report
    gates: list[Gate]
    checks: list[Check] = field(default_factory=list)
    min_samples: int = DEFAULT_MIN_SAMPLES
    options: GateOptions = field(default_factory=GateOptions)
    #: Both reports' warnings, each prefixed with its side.
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.checks)

    @property
    def judged(self) -> bool:
        return any(check.status in ("pass", "fail") for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for check in self.checks:
            counts[check.status] = counts.get(check.status, 0) + 1
        return {
            "hlthz_comparison": COMPARISON_VERSION,
            "failed": self.failed,
            "judged": self.judged,
            "gates": [gate.text for gate in self.gates],
            "min_samples": self.min_samples,
            "min_effect_ms": self.options.min_effect,
            "alpha": self.options.alpha,
            "counts": counts,
            "warnings": list(self.warnings),
            "checks": [check.to_dict() for check in self.checks],
        }

    def write_html(self, path: str | os.PathLike[str], *, what: str | None = None) -> None:
        """The candidate's HTML report with the baseline overlaid and the gate results.
        ``what`` (an option name) turns an OS error into one line naming it."""
        from hlthz.replay.html_report import write_html

        write_html(self.candidate, path, baseline=self.base, comparison=self.to_dict(), what=what)

    def junit(self) -> bytes:
        """JUnit XML: one test case per (scope, gate); checks not judged are skipped."""
        unjudged = ("insufficient", "missing", "inconclusive")
        suite = ET.Element(
            "testsuite",
            name="hlthz.replay.compare",
            tests=str(len(self.checks)),
            failures=str(len(self.failures)),
            skipped=str(sum(c.status in unjudged for c in self.checks)),
        )
        for check in self.checks:
            case = ET.SubElement(suite, "testcase", classname=check.scope, name=check.gate)
            if check.status == "fail":
                failure = ET.SubElement(case, "failure", message=_describe(check))
                failure.text = _describe(check)
            elif check.status in unjudged:
                ET.SubElement(case, "skipped", message=f"{check.status}: {check.note}")
        return ET.tostring(suite, encoding="utf-8", xml_declaration=True)

    def write_junit(self, path: str | os.PathLike[str], *, what: str | None = None) -> None:
        """Write :meth:`junit` atomically; ``what`` as for :meth:`write_html`."""
        atomic_write(path, self.junit(), what=what)

    def summary_lines(self) -> list[str]:
        """Warnings, one line per failed or unjudged check, then a verdict."""
        lines = [f"warning: {w}" for w in self.warnings]
        lines += [f"FAIL {_describe(c)}" for c in self.failures]
        lines += [
            f"inconclusive {_describe(c)}: {c.note}"
            for c in self.checks
            if c.status == "inconclusive"
        ]
        lines += [
            f"skip {c.scope}: {c.gate}: {c.note}" for c in self.checks if c.status == "insufficient"
        ]
        judged = sum(c.status in ("pass", "fail") for c in self.checks)
        unsure = sum(c.status == "inconclusive" for c in self.checks)
        if not self.judged:
            lines.append(f"gate NOT JUDGED: no check could pass or fail ({unsure} inconclusive)")
            return lines
        verdict = "FAILED" if self.failed else "passed"
        lines.append(
            f"gate {verdict}: {len(self.failures)} of {judged} checks failed"
            + (f", {unsure} inconclusive" if unsure else "")
        )
        return lines


def _describe(check: Check) -> str:
    if check.base is None or check.candidate is None:
        return f"{check.scope}: {check.gate}"
    change = ""
    if check.change is not None:
        change = " (from zero)" if not math.isfinite(check.change) else f" ({check.change:+.1%})"
    extra = ""
    if check.p_adjusted is not None and check.status in ("fail", "inconclusive"):
        extra = f", p={check.p_adjusted:.2g}"
    return (
        f"{check.scope}: {check.gate}: base {check.base:g} -> candidate "
        f"{check.candidate:g}{change}{extra}"
    )
