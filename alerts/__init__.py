"""Alert rules, Alertmanager routing, runbooks and promtool tests from one project file.

``find_project`` finds your ``hlthz.yaml`` (``init_project`` writes one), ``load_config`` reads
it (the dashboard generator reads it too; the packaged ``alerts/thresholds.yaml`` is the worked
example and the defaults), ``generate`` writes every artifact, ``check`` runs promtool, amtool
and HLTHZ's own lint; ``backtest`` evaluates the alerts over a Prometheus' history.
"""

from hlthz.alerts.backtest import (
    AlertBacktest,
    AlertEpisode,
    Backtest,
    BacktestOptions,
    BacktestResult,
    run_backtest,
)
from hlthz.alerts.checker import check
from hlthz.alerts.config import (
    DEFAULT_CONFIG_PATH,
    SIGNALS,
    AlertsConfig,
    AlertTiers,
    Buckets,
    CriticalAlerts,
    DegradedAlert,
    Duration,
    InfoAlerts,
    Links,
    RouteRule,
    Routing,
    Scope,
    Service,
    SeverityRoute,
    Slo,
    StateAlert,
    TargetMissingAlert,
    ThresholdAlert,
    TrafficAlert,
    WarningAlerts,
    expand_link,
    format_duration,
    grafana_link,
    load_config,
    parse_duration,
)
from hlthz.alerts.generator import check_drift, drift, generate, render_all
from hlthz.alerts.incidents import Incident, load_incidents, parse_time, write_incidents
from hlthz.alerts.project import (
    CONFIG_ENV,
    CONFIG_NAME,
    Project,
    alerts_root,
    find_project,
    init_project,
    output_dir,
)
from hlthz.alerts.routing import alertmanager_config
from hlthz.alerts.rules import AlertRule, all_alerts, rule_groups
from hlthz.alerts.signals import SIGNAL_SERIES, detect_signals, signal_of
from hlthz.checks import CheckReport
from hlthz.errors import AlertsCheckFailed, ConfigError, MissingDependency

__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "DEFAULT_CONFIG_PATH",
    "SIGNALS",
    "SIGNAL_SERIES",
    "AlertBacktest",
    "AlertEpisode",
    "AlertRule",
    "AlertTiers",
    "AlertsCheckFailed",
    "AlertsConfig",
    "Backtest",
    "BacktestOptions",
    "BacktestResult",
    "Buckets",
    "CheckReport",
    "ConfigError",
    "CriticalAlerts",
    "DegradedAlert",
    "Duration",
    "Incident",
    "InfoAlerts",
    "Links",
    "MissingDependency",
    "Project",
    "RouteRule",
    "Routing",
    "Scope",
    "Service",
    "SeverityRoute",
    "Slo",
    "StateAlert",
    "TargetMissingAlert",
    "ThresholdAlert",
    "TrafficAlert",
    "WarningAlerts",
    "alertmanager_config",
    "alerts_root",
    "all_alerts",
    "check",
    "check_drift",
    "detect_signals",
    "drift",
    "expand_link",
    "find_project",
    "format_duration",
    "generate",
    "grafana_link",
    "init_project",
    "load_config",
    "load_incidents",
    "output_dir",
    "parse_duration",
    "parse_time",
    "render_all",
    "rule_groups",
    "run_backtest",
    "signal_of",
    "write_incidents",
]
