"""The public API is pinned: each package's ``__all__`` is exactly these names, each resolves,
and every public exception is part of the one error tree (``hlthz.errors``).

A change here is an API change: adding a name is fine (say so in the docs), removing or renaming
one breaks users' code.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import hlthz
from hlthz.errors import HlthzError

PUBLIC = {
    "hlthz": ["HlthzError", "UsageError", "__version__"],
    "hlthz.checks": ["CheckReport", "Step"],
    "hlthz.files": ["atomic_write", "ensure_parent"],
    "hlthz.net": [
        "HOP_BY_HOP",
        "LOOPBACK",
        "HttpUrl",
        "format_host_port",
        "parse_host_port",
        "parse_http_url",
        "request_target",
    ],
    "hlthz.metrics_page": ["MAX_BYTES", "page_samples", "read_metrics_page"],
    "hlthz.routes": ["Routes", "normalize_path"],
    "hlthz.prometheus": ["MAX_POINTS", "PrometheusClient"],
    "hlthz.tools.diagnose": [
        "CAUSES",
        "SEVERITIES",
        "DiagnoseOptions",
        "Diagnosis",
        "DiagnosisFailed",
        "Finding",
        "Histogram",
        "Limits",
        "PrometheusError",
        "Samples",
        "ScrapeError",
        "ScrapeWindow",
        "Snapshot",
        "build_snapshot",
        "diagnose",
        "diagnose_snapshot",
        "evidence_text",
        "limits_from",
        "load_limits",
        "prometheus_samples",
        "registry_fetch",
        "render_table",
        "scrape_samples",
        "url_fetch",
        "write_json",
    ],
    "hlthz.inputs": [
        "MAX_NUMBER",
        "YamlDocument",
        "config_error",
        "encoding_problem",
        "excerpt",
        "json_field",
        "load_yaml",
        "parse_json",
        "parse_yaml",
        "read_limited",
    ],
    "hlthz.procs": [
        "LOOPBACK",
        "ManagedProcess",
        "ProcessGroup",
        "free_port",
        "hlthz_command",
        "http_ok",
        "pid_alive",
        "port_open",
        "runs_command",
        "stop_pid",
        "wait_until",
    ],
    "hlthz.extras": [
        "INCLUDES",
        "MODULES",
        "MissingExtra",
        "extra_of",
        "missing",
        "modules_of",
        "require",
    ],
    "hlthz.errors": [
        "AlertsCheckFailed",
        "CaptureFormatError",
        "CheckFailed",
        "ConfigError",
        "DashboardCheckFailed",
        "DashboardError",
        "DatabaseError",
        "DemoError",
        "DiagnosisFailed",
        "GateFailed",
        "HlthzError",
        "InputError",
        "MissingDependency",
        "MissingExtra",
        "MultiprocessError",
        "PlanError",
        "PrometheusError",
        "QueryError",
        "ReplayError",
        "ScrapeError",
        "SelectorError",
        "ServiceError",
        "ServiceUnavailable",
        "StackError",
        "StackUnhealthy",
        "TargetError",
        "UsageError",
    ],
    "hlthz.exporter": [
        "DEFAULT_MAX_SERIES_PER_METRIC",
        "DEFAULT_QUERY_BUCKETS",
        "DEFAULT_REQUEST_BUCKETS",
        "OTHER_METHOD",
        "OVERFLOW",
        "UNMATCHED_ROUTE",
        "CacheMetrics",
        "ConfigError",
        "JobMetrics",
        "Metrics",
        "MultiprocessError",
        "Routes",
        "UpstreamMetrics",
        "instrument",
        "instrument_dbapi",
        "instrument_sqlalchemy",
        "memory_limit_bytes",
        "metrics_app",
        "normalize_path",
        "query_name",
    ],
    "hlthz.alerts": [
        "AlertBacktest",
        "AlertEpisode",
        "Backtest",
        "BacktestOptions",
        "BacktestResult",
        "Incident",
        "run_backtest",
        "load_incidents",
        "parse_time",
        "write_incidents",
        "CONFIG_ENV",
        "CONFIG_NAME",
        "DEFAULT_CONFIG_PATH",
        "SIGNALS",
        "SIGNAL_SERIES",
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
        "output_dir",
        "parse_duration",
        "render_all",
        "rule_groups",
        "signal_of",
    ],
    "hlthz.dashboards": [
        "EXPECTED_EMPTY",
        "SCHEMA_VERSION",
        "UIDS",
        "CheckReport",
        "DashboardCheckFailed",
        "DashboardError",
        "DashboardSettings",
        "Finding",
        "PanelResult",
        "build_dashboards",
        "check_dashboards",
        "expected_files",
        "for_import",
        "generate",
        "lint_dashboard",
        "lint_dir",
        "load_settings",
        "provider_yaml",
        "query_dashboards",
        "rate_window_problems",
        "substitute",
    ],
    "hlthz.demo_api": [
        "OPTIMIZATIONS",
        "PROFILES",
        "ConfigError",
        "DatabaseError",
        "SeedResult",
        "ServiceUnavailable",
        "Settings",
        "create_app",
        "parse_opt",
        "profile_opts",
        "run_worker",
        "seed",
        "serve",
    ],
    "hlthz.replay.capture": [
        "CaptureFormatError",
        "CaptureReader",
        "CaptureRecord",
        "CaptureRecorder",
        "CaptureWriter",
        "ReadStats",
        "Redactor",
        "Rewrite",
        "detect_format",
        "iter_records",
        "read_capture",
        "recording",
    ],
    "hlthz.replay.build": ["build_report"],
    "hlthz.replay.compare": [
        "COMPARISON_VERSION",
        "DEFAULT_GATES",
        "TAIL_SAMPLES",
        "Allow",
        "Check",
        "Comparison",
        "Gate",
        "GateOptions",
        "compare_reports",
        "refuse_unfit",
    ],
    "hlthz.replay.verdict": ["COMPARISON_VERSION", "Check", "Comparison"],
    "hlthz.replay.gates": [
        "DEFAULT_ALPHA",
        "DEFAULT_COUNT_TOLERANCE",
        "DEFAULT_GATES",
        "DEFAULT_MIN_EFFECT_MS",
        "DEFAULT_MIN_SAMPLES",
        "LAG_REFUSE_MS",
        "LATENCY",
        "METRICS",
        "OPS",
        "SHARES",
        "Allow",
        "Gate",
        "GateOptions",
    ],
    "hlthz.replay": [
        "Allow",
        "CaptureFormatError",
        "CaptureReader",
        "CaptureRecord",
        "CaptureRecorder",
        "CaptureWriter",
        "Comparison",
        "DiffResult",
        "Gate",
        "GateFailed",
        "GateOptions",
        "PlanError",
        "ReadStats",
        "Redactor",
        "ReplayError",
        "ReplayPlan",
        "Report",
        "RouteReport",
        "ScheduleOptions",
        "TargetError",
        "compare_reports",
        "detect_format",
        "iter_records",
        "print_summary",
        "read_capture",
        "recording",
        "run_diff",
        "run_replay",
        "write_html",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_exactly_the_public_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(PUBLIC[module])
    assert len(set(imported.__all__)) == len(imported.__all__)
    for name in imported.__all__:
        assert getattr(imported, name) is not None, f"{module}.{name}"


def _modules() -> list[str]:
    names = ["hlthz"]
    for info in pkgutil.walk_packages(hlthz.__path__, "hlthz."):
        names.append(info.name)
    return sorted(names)


def test_every_public_exception_is_part_of_the_one_tree() -> None:
    """Exceptions that leave HLTHZ derive from HlthzError (their kind sets the exit code);
    an exception class whose name or module is private never leaves its module."""
    strays = []
    for name in _modules():
        if any(part.startswith("_") for part in name.split(".")) or name == "hlthz.__main__":
            continue
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
                and not issubclass(value, HlthzError)
            ):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_every_error_leaf_is_drawn_in_the_tree() -> None:
    from hlthz import errors

    drawing = errors.__doc__ or ""
    for name in errors.__all__:
        assert f" {name} " in drawing, f"{name} missing from the hlthz.errors docstring"


def test_the_replay_half_loads_on_first_use_and_only_it() -> None:
    import hlthz.replay
    from hlthz.replay import _api

    assert set(_api.__all__) == hlthz.replay._REPLAY_HALF
    for name in _api.__all__:
        assert getattr(hlthz.replay, name) is getattr(_api, name)
