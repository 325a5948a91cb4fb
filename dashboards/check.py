"""``hlthz dashboards check``: the offline lint, then (optionally) every query on Prometheus."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hlthz.dashboards.generate import DEFAULT_OUT
from hlthz.dashboards.lint import Finding, dashboard_files, lint_dir, load_dashboard
from hlthz.dashboards.live import (
    OK,
    PanelResult,
    PrometheusClient,
    check_dashboard,
    variable_values,
)
from hlthz.dashboards.settings import DashboardSettings, duration_seconds
from hlthz.errors import DashboardCheckFailed


@dataclass
class CheckReport:
    """Lint findings and, with a Prometheus, one result per panel, variable and annotation."""

    findings: list[Finding] = field(default_factory=list)
    panels: list[PanelResult] = field(default_factory=list)

    @property
    def failures(self) -> list[PanelResult]:
        return [p for p in self.panels if p.failed]

    @property
    def failed(self) -> bool:
        return bool(self.findings or self.failures)

    def lines(self, *, verbose: bool = False) -> list[str]:
        """Human-readable report: problems, then (``verbose``) every query's outcome."""
        out = [f"lint: {f}" for f in self.findings]
        for result in self.panels:
            if verbose or result.status != OK:
                out.append(f"{'FAIL' if result.failed else 'ok  '} {result}")
        if self.panels:
            counts: dict[str, int] = {}
            for result in self.panels:
                counts[result.status] = counts.get(result.status, 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            out.append(f"queries: {summary}")
        if not self.failed:  # a failure's summary is the error line the CLI prints
            out.append("dashboards OK")
        return out

    def raise_for_failures(self) -> None:
        """Raise :class:`DashboardCheckFailed` (exit code 1) when anything failed."""
        if self.failed:
            raise DashboardCheckFailed(f"dashboard check failed: {self._summary()}")

    def _summary(self) -> str:
        return f"{len(self.findings)} lint finding(s), {len(self.failures)} failing panel(s)"


def check_dashboards(
    directory: str | Path | None = None,
    *,
    settings: DashboardSettings | None = None,
    prometheus: str | None = None,
    job: str | None = None,
    rate_interval: str | None = None,
    drift: bool = True,
) -> CheckReport:
    """Lint the dashboards in ``directory`` and, given a ``prometheus`` URL, run their queries.

    ``rate_interval`` replaces ``$__rate_interval`` (default: four scrape intervals of the
    thresholds file); ``job`` replaces ``$job`` (default: every job).
    """
    root = Path(directory) if directory is not None else DEFAULT_OUT
    settings = settings or DashboardSettings()
    report = CheckReport(findings=lint_dir(root, settings, drift=drift))
    if prometheus:
        interval = rate_interval or settings.rate_interval
        duration_seconds(interval)  # a bad value is a usage error, not a failing query
        values = variable_values(interval, job)
        client = PrometheusClient(prometheus)
        seen: set[str] = set()
        for path in dashboard_files(root):
            board = load_dashboard(path)
            uid = str(board.get("uid"))
            if uid in seen:  # the import and provisioning forms hold the same queries
                continue
            seen.add(uid)
            report.panels.extend(check_dashboard(board, client, values))
    return report
