"""``hlthz dashboards check``: the offline lint, then (optionally) every query on Prometheus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hlthz.checks import CheckReport, Step
from hlthz.dashboards.generate import DEFAULT_OUT, UIDS
from hlthz.dashboards.lint import dashboard_files, lint_dir, load_dashboard
from hlthz.dashboards.live import (
    SKIPPED,
    PanelResult,
    SignalProbe,
    check_dashboard,
    promql_regex_literal,
    variable_values,
)
from hlthz.dashboards.settings import DashboardSettings, duration_seconds
from hlthz.errors import DashboardCheckFailed
from hlthz.prometheus import PrometheusClient


def query_dashboards(
    directory: str | Path | None = None,
    *,
    prometheus: str,
    settings: DashboardSettings | None = None,
    job: str | None = None,
    rate_interval: str | None = None,
    probe: SignalProbe | None = None,
) -> list[PanelResult]:
    """Run every panel, variable and annotation query of the dashboards in ``directory`` on
    ``prometheus``: one result each (ok, error, empty, empty as expected, or skipped: a metric
    family the app does not emit, or a service that is not scraped).

    ``rate_interval`` replaces ``$__rate_interval`` (default: four scrape intervals of the
    thresholds file); ``job`` replaces ``$job`` (default: every job).
    """
    root = Path(directory) if directory is not None else DEFAULT_OUT
    settings = settings or DashboardSettings()
    interval = rate_interval or settings.rate_interval
    duration_seconds(interval)  # a bad value is a usage error, not a failing query
    values = variable_values(interval, job)
    client = PrometheusClient(prometheus)
    probe = probe or SignalProbe(client, values["job"])
    scopes = _scopes(settings)
    seen: set[str] = set()
    results: list[PanelResult] = []
    for path in dashboard_files(root):
        board = load_dashboard(path)
        uid = str(board.get("uid"))
        if uid in seen:  # the import and provisioning forms hold the same queries
            continue
        seen.add(uid)
        scope, reason = scopes.get(uid, ((), ""))
        results.extend(
            check_dashboard(board, client, values, scope=scope, scope_reason=reason, probe=probe)
        )
    return results


def _scopes(settings: DashboardSettings) -> dict[str, tuple[tuple[str, ...], str]]:
    """uid -> (the scope's job matchers, why its dashboards are skipped when none is scraped)."""
    found = {}
    others = ", ".join(s.service for s in settings.services)
    for scope in (settings, *settings.services):
        if scope.service:
            reason = f"service {scope.service} is not scraped (no job={scope.service!r} series)"
        else:
            reason = (
                f"no job other than the services ({others}) is scraped; they have dashboards of "
                "their own"
            )
        for base in UIDS:
            found[scope.uid(base)] = (scope.scope, reason)
    return found


def check_dashboards(
    directory: str | Path | None = None,
    *,
    settings: DashboardSettings | None = None,
    prometheus: str | None = None,
    job: str | None = None,
    rate_interval: str | None = None,
    drift: bool = True,
) -> CheckReport:
    """Lint the dashboards in ``directory`` and, given a ``prometheus`` URL, run their queries
    (:func:`query_dashboards`). Steps ``lint`` and ``queries``; ``raise_for_failures()`` raises
    :class:`~hlthz.errors.DashboardCheckFailed`."""
    root = Path(directory) if directory is not None else DEFAULT_OUT
    settings = settings or DashboardSettings()
    lint = Step("lint", [str(finding) for finding in lint_dir(root, settings, drift=drift)])
    report = CheckReport("dashboards check", [lint], DashboardCheckFailed)
    if prometheus:
        probe = SignalProbe(
            PrometheusClient(prometheus), promql_regex_literal(job) if job else ".+"
        )
        panels = query_dashboards(
            root,
            prometheus=prometheus,
            settings=settings,
            job=job,
            rate_interval=rate_interval,
            probe=probe,
        )
        skipped = Counter(r.detail.split(":")[0] for r in panels if r.status == SKIPPED)
        report.steps.append(
            Step(
                "signals",
                summary="; ".join(f"{why}: {n} skipped" for why, n in sorted(skipped.items()))
                or "every panel's metric family is emitted",
            )
        )
        counts = Counter(result.status for result in panels)
        report.steps.append(
            Step(
                "queries",
                findings=[str(result) for result in panels if result.failed],
                summary=", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
                notes=[str(result) for result in panels if not result.failed],
            )
        )
    return report
