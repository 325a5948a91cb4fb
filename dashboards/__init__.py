"""Grafana dashboards for HLTHZ, generated with grafanalib from ``alerts/thresholds.yaml``.

Four dashboards (UIDs ``hlthz-api``, ``hlthz-database``, ``hlthz-cache-jobs``,
``hlthz-release``) in two forms: UI import (with ``__inputs``) and file provisioning (with the
provider YAML). :func:`generate` writes them; :func:`check_dashboards` lints them offline and,
given a Prometheus URL, runs every panel query against it.
"""

# ruff: noqa: E402 (the extras check below runs before the imports it guards)
from hlthz.extras import require

# One line naming the extra instead of a traceback from deep inside the imports below.
require("dashboards", what="hlthz.dashboards")

from hlthz.checks import CheckReport
from hlthz.dashboards.check import check_dashboards, query_dashboards
from hlthz.dashboards.common import SCHEMA_VERSION
from hlthz.dashboards.generate import (
    UIDS,
    build_dashboards,
    expected_files,
    for_import,
    generate,
    provider_yaml,
)
from hlthz.dashboards.lint import Finding, lint_dashboard, lint_dir, rate_window_problems
from hlthz.dashboards.live import EXPECTED_EMPTY, PanelResult, substitute
from hlthz.dashboards.settings import DashboardSettings, load_settings
from hlthz.errors import DashboardCheckFailed, DashboardError

__all__ = [
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
]
