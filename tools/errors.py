"""Errors of :mod:`hlthz.tools`.

- :class:`ServiceError`: a helper process (Prometheus, Alertmanager, PostgreSQL, Redis, nginx,
  the demo API) is missing, did not start or did not become ready. The message names the binary
  or the log file to read.
- :class:`StackError`: ``hlthz stack`` cannot start, is already running, or its state is
  unreadable (a :class:`ServiceError`).
- :class:`DemoError`: ``hlthz demo`` could not tell its story: a piece is missing or a step
  failed (exit code 1).
"""

from hlthz.errors import CheckFailed, HlthzError


class ServiceError(HlthzError):
    """A service binary is missing or its process failed to start (exit code 2)."""

    exit_code = 2


class StackError(ServiceError):
    """The stack cannot start, is already running, or its state is unreadable (exit 2)."""


class DemoError(CheckFailed):
    """The demo could not tell its story: a piece is missing or a step failed (exit 1)."""
