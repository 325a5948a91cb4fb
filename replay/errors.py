"""Errors of :mod:`hlthz.replay`.

- :class:`ReplayError`: base of this package's errors (exit code 2).
- :class:`CaptureFormatError`: a capture or imported file is malformed; the message starts with
  ``FILE:LINE:`` and says what is wrong.
- :class:`TargetError`: the replay target is unreachable or refused (exit code 2).
- :class:`GateFailed`: ``replay compare`` found a regression (exit code 1).
"""

from hlthz.errors import CheckFailed, HlthzError


class ReplayError(HlthzError):
    """Base class of replay errors: bad input or usage (exit code 2)."""

    exit_code = 2


class CaptureFormatError(ReplayError):
    """A malformed capture or import file. ``str()`` is ``FILE:LINE: what is wrong``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


class TargetError(ReplayError):
    """The replay target cannot be reached or is not allowed."""


class GateFailed(CheckFailed):
    """A release gate failed: the candidate is slower or fails more than allowed."""
