"""Errors of :mod:`hlthz.tools`.

- :class:`ServiceError`: a helper process (Prometheus, Alertmanager, PostgreSQL, Redis, nginx,
  the demo API) is missing, did not start or did not become ready. The message names the binary
  or the log file to read.
"""

from hlthz.errors import HlthzError


class ServiceError(HlthzError):
    """A service binary is missing or its process failed to start (exit code 2)."""

    exit_code = 2
