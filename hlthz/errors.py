"""The root of every HLTHZ error.

Each subpackage has its own ``errors.py`` whose classes derive from :class:`HlthzError`, so a
caller can catch one package's errors or all of them. The CLI prints ``str(error)`` on one line
and exits with :attr:`HlthzError.exit_code` (2: bad usage or input; 1: a check or gate failed).
Messages name the file, line or field at fault and say what to do.
"""


class HlthzError(Exception):
    """Base class of HLTHZ's errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2


class UsageError(HlthzError):
    """Bad arguments, configuration or input data (exit code 2)."""

    exit_code = 2


class CheckFailed(HlthzError):
    """A check or a gate ran and failed (exit code 1): a regression, a failing rule test."""

    exit_code = 1
