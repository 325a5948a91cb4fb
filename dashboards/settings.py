"""The few numbers dashboards take from ``alerts/thresholds.yaml``.

Dashboards and alerts must agree: the red line on a latency panel is the latency that pages
someone. So the dashboards never hard-code a threshold; they read the same file the alert
generator reads (through :func:`hlthz.alerts.load_config`) and keep only what they draw.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hlthz.alerts import expand_link, format_duration, grafana_link, parse_duration
from hlthz.errors import DashboardError


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration of at least 1s such as ``15s``, ``5m`` or ``1h30m``."""
    try:
        seconds = parse_duration(str(text).strip())
    except ValueError:
        seconds = 0.0
    if seconds < 1:
        raise DashboardError(
            f"{text!r} is not a Prometheus duration of at least 1s (examples: 15s, 5m, 1h30m)"
        )
    return seconds


def _packaged(name: str) -> Any:
    """A field whose default is ``name`` as the packaged ``alerts/thresholds.yaml`` sets it."""
    return field(default_factory=lambda: getattr(_packaged_settings(), name))


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboards draw from the thresholds file.

    Latencies are seconds; shares are ratios between 0 and 1. A field left out takes its value
    from the packaged thresholds file, as a key left out of a thresholds file does, so
    ``DashboardSettings()`` is what ``load_settings()`` reads and there is no second copy of
    the defaults to keep in step.
    """

    latency_warning: float = _packaged("latency_warning")
    latency_critical: float = _packaged("latency_critical")
    error_rate: float = _packaged("error_rate")
    cache_hit_rate: float = _packaged("cache_hit_rate")
    memory: float = _packaged("memory")
    selector: str = _packaged("selector")
    scrape_interval: str = _packaged("scrape_interval")
    runbook_url: str = _packaged("runbook_url")
    #: The metric families the app emits: panels of the others are left out.
    signals: tuple[str, ...] = _packaged("signals")
    #: The service these dashboards are for ("": every job no service names).
    service: str = ""
    #: Matchers selecting the scope's jobs (``job="shop"``, ``job!="shop"``...).
    scope: tuple[str, ...] = ()
    #: Routes out of every panel (``exclude: true`` in the project file).
    excluded_routes: tuple[str, ...] = ()
    #: Routes with their own P95 thresholds: (key, method or "", route, warning, critical).
    route_latency: tuple[tuple[str, str, str, float, float], ...] = ()
    #: The services' own settings (on the default scope's settings only).
    services: tuple[DashboardSettings, ...] = ()

    @property
    def rate_interval(self) -> str:
        """What Grafana's ``$__rate_interval`` is at its smallest: four scrape intervals."""
        return format_duration(4 * duration_seconds(self.scrape_interval))

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert``: the config's pattern with ``{alert}`` filled in, as the
        alerts fill it; an alert label template becomes the dashboard's variable
        (``{{ $labels.job }}`` -> ``${job}``)."""
        return grafana_link(expand_link(self.runbook_url, alert=alert))

    def uid(self, base: str) -> str:
        """The UID of dashboard ``base`` for this scope (``hlthz-api-shop`` for ``shop``)."""
        return f"{base}-{self.service}" if self.service else base

    def title(self, base: str) -> str:
        """``HLTHZ / API overview``, or ``HLTHZ / shop / API overview`` for a service."""
        return base.replace("HLTHZ / ", f"HLTHZ / {self.service} / ") if self.service else base

    @classmethod
    def from_config(cls, config: Any) -> DashboardSettings:
        """Pick the dashboard's numbers out of an ``hlthz.alerts.AlertsConfig``: the default
        scope's, with one settings object per service in ``services``."""
        try:
            scopes = [cls._from_scope(config, scope) for scope in config.scopes]
        except AttributeError as exc:  # an AlertsConfig from an incompatible version
            raise DashboardError(
                f"the alerts config has no {exc.name!r}: hlthz.alerts and hlthz.dashboards "
                "disagree on the thresholds schema"
            ) from exc
        return replace(scopes[0], services=tuple(scopes[1:]))

    @classmethod
    def _from_scope(cls, config: Any, scope: Any) -> DashboardSettings:
        critical = scope.alerts.critical
        warning = scope.alerts.warning
        return cls(
            latency_warning=float(warning.latency_p95.threshold),
            latency_critical=float(critical.latency_p95.threshold),
            error_rate=float(critical.error_rate.threshold),
            cache_hit_rate=float(warning.cache_hit_rate.threshold),
            memory=float(warning.memory.threshold),
            selector=str(config.selector or ""),
            scrape_interval=str(config.scrape_interval),
            runbook_url=str(scope.links.runbook_url),
            signals=tuple(scope.signals),
            service=scope.service or "",
            scope=tuple(scope.job_matchers),
            excluded_routes=tuple(r.route for r in scope.excluded),
            route_latency=tuple(
                (
                    r.key,
                    r.method or "",
                    r.route,
                    float(r.latency[1].threshold),
                    float(r.latency[0].threshold),
                )
                for r in scope.route_latency
            ),
        )


def load_settings(config: str | Path | None = None) -> DashboardSettings:
    """Read ``config`` (None: the packaged ``alerts/thresholds.yaml``) into settings.

    Validation and its error messages (naming the key at fault) are the alert package's.
    """
    from hlthz.alerts import load_config

    return DashboardSettings.from_config(load_config(config))


@functools.cache
def _packaged_settings() -> DashboardSettings:
    # Read once: the defaults of every DashboardSettings() built in this process.
    return load_settings()
