"""The few numbers dashboards take from ``alerts/thresholds.yaml``.

Dashboards and alerts must agree: the red line on a latency panel is the latency that pages
someone. So the dashboards never hard-code a threshold; they read the same file the alert
generator reads (through :func:`hlthz.alerts.load_config`) and keep only what they draw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlthz.dashboards.errors import DashboardError

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``15s``, ``5m`` or ``1h30m``."""
    text = str(text).strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DashboardError(f"{text!r} is not a Prometheus duration (examples: 15s, 5m, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a whole number of seconds (``60`` -> ``1m``)."""
    whole = round(seconds)
    if whole <= 0:
        raise DashboardError(f"a duration must be at least 1s, got {seconds:g}s")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboards draw from the thresholds file.

    Latencies are seconds; shares are ratios between 0 and 1.
    """

    latency_warning: float = 0.5
    latency_critical: float = 1.0
    error_rate: float = 0.05
    cache_hit_rate: float = 0.7
    memory: float = 0.8
    selector: str = ""
    scrape_interval: str = "15s"
    runbook_url: str = "https://github.com/hlthz/hlthz/blob/main/alerts/runbooks/{alert}.md"

    @property
    def rate_interval(self) -> str:
        """What Grafana's ``$__rate_interval`` is at its smallest: four scrape intervals."""
        return format_duration(4 * duration_seconds(self.scrape_interval))

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert`` (the config's template with ``{alert}`` filled in)."""
        return self.runbook_url.replace("{alert}", alert)

    @classmethod
    def from_config(cls, config: Any) -> DashboardSettings:
        """Pick the dashboard's numbers out of an ``hlthz.alerts.AlertsConfig``."""
        try:
            critical = config.alerts.critical
            warning = config.alerts.warning
            return cls(
                latency_warning=float(warning.latency_p95.threshold),
                latency_critical=float(critical.latency_p95.threshold),
                error_rate=float(critical.error_rate.threshold),
                cache_hit_rate=float(warning.cache_hit_rate.threshold),
                memory=float(warning.memory.threshold),
                selector=str(config.selector or ""),
                scrape_interval=str(config.scrape_interval),
                runbook_url=str(config.links.runbook_url),
            )
        except AttributeError as exc:  # an AlertsConfig from an incompatible version
            raise DashboardError(
                f"the alerts config has no {exc.name!r}: hlthz.alerts and hlthz.dashboards "
                "disagree on the thresholds schema"
            ) from exc


def load_settings(config: str | Path | None = None) -> DashboardSettings:
    """Read ``config`` (None: the packaged ``alerts/thresholds.yaml``) into settings.

    Validation and its error messages (naming the key at fault) are the alert package's.
    """
    from hlthz.alerts import load_config

    return DashboardSettings.from_config(load_config(config))
