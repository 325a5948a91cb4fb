"""What a check found: one report shape for ``hlthz alerts check`` and ``hlthz dashboards check``.

A check runs :class:`Step`\\ s (``promtool test rules``, the dashboards' lint, every panel query...)
and every step runs even when an earlier one failed, so one run lists every problem. The report
prints the same way for every check and turns into the check's :class:`~hlthz.errors.CheckFailed`
leaf (exit code 1) when any step found something.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hlthz.errors import CheckFailed

__all__ = ["CheckReport", "Step"]


@dataclass
class Step:
    """One step: ``findings`` are problems (empty: it passed); ``summary`` is a one-line tally
    shown beside its name; ``notes`` are what passed, shown with ``verbose``."""

    name: str
    findings: list[str] = field(default_factory=list)
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class CheckReport:
    """Every step of one check run. ``what`` names the check in its failure message;
    ``error`` is the :class:`~hlthz.errors.CheckFailed` leaf :meth:`raise_for_failures` raises."""

    what: str
    steps: list[Step] = field(default_factory=list)
    error: type[CheckFailed] = CheckFailed

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def findings(self) -> list[str]:
        """Every problem, prefixed with its step's name."""
        return [f"{step.name}: {finding}" for step in self.steps for finding in step.findings]

    def step(self, name: str) -> Step:
        """The step called ``name`` (:class:`KeyError` when the check did not run it)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def lines(self, *, verbose: bool = False) -> list[str]:
        """``ok``/``FAIL`` and the name of each step, its findings (and with ``verbose`` its
        notes) indented below."""
        out = []
        for step in self.steps:
            tally = f" ({step.summary})" if step.summary else ""
            out.append(f"{'ok  ' if step.ok else 'FAIL'} {step.name}{tally}")
            for item in step.findings + (step.notes if verbose else []):
                out.extend("       " + line for line in item.splitlines())
        return out

    def raise_for_failures(self) -> None:
        """Raise :attr:`error` (exit code 1) naming the first problem and how many more."""
        findings = self.findings
        if findings:
            first = findings[0].splitlines()[0]
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            raise self.error(f"{self.what} failed: {first}{more}", findings)
