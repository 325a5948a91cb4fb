"""Alert rules, Alertmanager routing, runbooks and promtool tests from one thresholds file.

``load_config`` reads ``alerts/thresholds.yaml`` (also used by the dashboard generator),
``generate`` writes every artifact, ``check`` runs promtool, amtool and HLTHZ's own lint.
"""

from hlthz.alerts.checker import check
from hlthz.alerts.config import (
    DEFAULT_CONFIG_PATH,
    AlertsConfig,
    AlertTiers,
    Buckets,
    CriticalAlerts,
    DegradedAlert,
    Duration,
    InfoAlerts,
    Links,
    Slo,
    StateAlert,
    TargetMissingAlert,
    ThresholdAlert,
    TrafficAlert,
    WarningAlerts,
    format_duration,
    load_config,
    parse_duration,
)
from hlthz.alerts.generator import check_drift, drift, generate, render_all
from hlthz.alerts.rules import AlertRule, all_alerts, rule_groups
from hlthz.checks import CheckReport
from hlthz.errors import AlertsCheckFailed, ConfigError, MissingDependency

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AlertRule",
    "AlertTiers",
    "AlertsCheckFailed",
    "AlertsConfig",
    "Buckets",
    "CheckReport",
    "ConfigError",
    "CriticalAlerts",
    "DegradedAlert",
    "Duration",
    "InfoAlerts",
    "Links",
    "MissingDependency",
    "Slo",
    "StateAlert",
    "TargetMissingAlert",
    "ThresholdAlert",
    "TrafficAlert",
    "WarningAlerts",
    "all_alerts",
    "check",
    "check_drift",
    "drift",
    "format_duration",
    "generate",
    "load_config",
    "parse_duration",
    "render_all",
    "rule_groups",
]
