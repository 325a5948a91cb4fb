"""Errors of :mod:`hlthz.alerts`.

- :class:`ConfigError`: the thresholds file is missing, not YAML, or fails validation. The message
  is one line: ``FILE:LINE: key.path: what is wrong; what to do``.
- :class:`ToolMissing`: ``promtool`` or ``amtool`` is not installed (the message says how to
  install it).
- :class:`CheckFailed`: ``hlthz alerts check`` found problems (exit code 1); ``findings`` lists
  them.
"""

from __future__ import annotations

from collections.abc import Sequence

from hlthz.errors import CheckFailed as _CheckFailed
from hlthz.errors import UsageError


class ConfigError(UsageError):
    """The thresholds file is invalid (exit code 2)."""


class ToolMissing(UsageError):
    """A binary that ``hlthz alerts check`` runs is not installed (exit code 2)."""


class CheckFailed(_CheckFailed):
    """``hlthz alerts check`` found problems (exit code 1)."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        count = len(self.findings)
        first = self.findings[0].splitlines()[0] if self.findings else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"alerts check failed: {first}{more}")
