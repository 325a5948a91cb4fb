"""``diagnose(options)``: read the metrics, build the snapshot, judge it, return a Diagnosis."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlthz.alerts import AlertsConfig, find_project, load_config
from hlthz.errors import UsageError
from hlthz.tools.diagnose._causes import CAUSES, SEVERITIES, Finding, Limits, judge
from hlthz.tools.diagnose._prometheus import prometheus_samples
from hlthz.tools.diagnose._scrape import scrape_samples, url_fetch
from hlthz.tools.diagnose.snapshot import Snapshot, build_snapshot

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DiagnoseOptions:
    """What ``hlthz diagnose`` was asked: exactly one of ``prometheus`` and ``metrics``."""

    prometheus: str | None = None
    metrics: str | None = None
    job: str | None = None
    #: Seconds: Prometheus' look-back (default 15 min), or the time between two scrapes (30 s).
    window: float | None = None
    config: Path | None = None
    fail_on: str | None = None
    interval: float = 1.0

    def __post_init__(self) -> None:
        if (self.prometheus is None) == (self.metrics is None):
            raise UsageError("give exactly one of --prometheus URL and --metrics URL")
        if self.window is not None and self.window <= 0:
            raise UsageError(f"--window must be positive, got {self.window}")
        if self.fail_on is not None and self.fail_on not in SEVERITIES:
            raise UsageError(f"--fail-on {self.fail_on!r}: use one of {', '.join(SEVERITIES)}")
        if self.job is not None and self.metrics is not None:
            raise UsageError("--job goes with --prometheus (a --metrics URL is one app already)")


@dataclass(frozen=True)
class Diagnosis:
    """The ranked findings of one window, and the causes that could not be judged."""

    source: str
    window_seconds: float
    requests: float
    server_seconds: float
    findings: tuple[Finding, ...]
    not_measured: dict[str, str] = field(default_factory=dict)

    def causes(self, route: str | None = None) -> list[str]:
        """The causes found (on ``route`` only, when given), in rank order."""
        return [f.cause for f in self.findings if route is None or f.route == route]

    def worst(self) -> str | None:
        """The most severe severity found, or None."""
        ranks = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[min(ranks)] if ranks else None

    def fails(self, severity: str) -> bool:
        """True when a finding is at ``severity`` or worse."""
        worst = self.worst()
        return worst is not None and SEVERITIES.index(worst) <= SEVERITIES.index(severity)

    def to_json(self) -> dict[str, Any]:
        return {
            "hlthz_diagnosis": FORMAT_VERSION,
            "source": self.source,
            "window_seconds": round(self.window_seconds, 3),
            "requests": round(self.requests),
            "server_seconds": round(self.server_seconds, 3),
            "findings": [f.to_json() for f in self.findings],
            "not_measured": {c: self.not_measured[c] for c in CAUSES if c in self.not_measured},
        }


def limits_from(config: AlertsConfig) -> Limits:
    """The rule limits with the thresholds file's latency, error and cache numbers."""
    alerts = config.alerts
    return Limits(
        latency_warning=alerts.warning.latency_p95.threshold,
        latency_critical=alerts.critical.latency_p95.threshold,
        error_rate=alerts.critical.error_rate.threshold,
        cache_hit_rate=alerts.warning.cache_hit_rate.threshold,
    )


def load_limits(config: Path | None = None) -> tuple[Limits, AlertsConfig]:
    """Limits from ``config``, else ``hlthz.yaml`` here, else the packaged thresholds."""
    project = find_project(config, required=False)
    loaded = load_config(project.config if project else None)
    return limits_from(loaded), loaded


def diagnose_snapshot(
    snapshot: Snapshot, limits: Limits | None = None, config: AlertsConfig | None = None
) -> Diagnosis:
    """Judge a snapshot (the library entry the demo and the tests use)."""
    if limits is None or config is None:
        default_limits, default_config = load_limits()
        limits = limits or default_limits
        config = config or default_config
    findings, not_measured = judge(snapshot, limits, config.links.runbook)
    if snapshot.requests <= 0:
        not_measured = {"*": "no requests in the window", **not_measured}
    return Diagnosis(
        source=snapshot.source,
        window_seconds=snapshot.window_seconds,
        requests=snapshot.requests,
        server_seconds=snapshot.server_seconds,
        findings=tuple(findings),
        not_measured=not_measured,
    )


def diagnose(options: DiagnoseOptions) -> Diagnosis:
    """Read the window's metrics from the source in ``options`` and judge them."""
    limits, config = load_limits(options.config)
    if options.prometheus is not None:
        samples = prometheus_samples(
            options.prometheus, job=options.job, window=options.window or 900.0
        )
    else:
        assert options.metrics is not None
        fetch = url_fetch(options.metrics)
        samples = scrape_samples(
            fetch, options.window or 30.0, source=options.metrics, interval=options.interval
        )
    return diagnose_snapshot(build_snapshot(samples), limits, config)
