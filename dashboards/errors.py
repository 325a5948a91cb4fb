"""Errors of :mod:`hlthz.dashboards`.

- :class:`DashboardError`: bad input (a config value, an unreadable or malformed dashboard file,
  an unreachable Prometheus); exit code 2.
- :class:`DashboardCheckFailed`: ``hlthz dashboards check`` ran and found problems; exit code 1.
"""

from hlthz.errors import CheckFailed, HlthzError


class DashboardError(HlthzError):
    """Bad input or usage for the dashboard generator or checker (exit code 2)."""

    exit_code = 2


class DashboardCheckFailed(CheckFailed):
    """The lint or the live query check found problems (exit code 1)."""

    exit_code = 1
