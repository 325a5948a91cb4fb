"""Every error HLTHZ raises, in one tree.

A caller catches one kind (``except UsageError``), one leaf (``except GateFailed``) or
everything (``except HlthzError``). The ``hlthz`` command prints ``str(error)`` as one line,
``hlthz: error: <message>``, and exits with :attr:`HlthzError.exit_code`: 2 when the input or
the environment is wrong (nothing was judged), 1 when a check ran and found problems. Messages
name the file, line, field or option at fault and say what to do; they never quote a secret.

::

    HlthzError                       exit 2
    ├── UsageError                   bad arguments, options or input
    │   ├── ConfigError              a configuration file or option is invalid
    │   │   ├── MultiprocessError    PROMETHEUS_MULTIPROC_DIR is unusable (exporter)
    │   │   ├── SelectorError        a selector is not a list of PromQL label matchers
    │   │   └── PlanError            a replay setting is invalid; ``.field`` names it (replay)
    │   ├── InputError               an input file is malformed: FILE:LINE: what is wrong
    │   │   └── CaptureFormatError   a capture or an imported file (replay)
    │   ├── MissingDependency        an optional extra or an external program is not installed
    │   │   └── MissingExtra         a module of an extra (also a ModuleNotFoundError)
    │   ├── ReplayError              bad usage of capture, replay, compare or diff
    │   └── DashboardError           bad usage of the dashboard generator or checker
    ├── ServiceError                 a process or service HLTHZ starts or talks to failed
    │   ├── TargetError              the replay target is unreachable (replay)
    │   ├── PrometheusError          Prometheus is unreachable or does not answer like one
    │   │   └── QueryError           Prometheus rejected a query (bad PromQL)
    │   ├── ScrapeError              an app's /metrics is unreachable or not Prometheus text
    │   ├── DatabaseError            the demo API's database is unreachable or not seeded
    │   ├── ServiceUnavailable       a demo API request could not get a connection (HTTP 503)
    │   └── StackError               ``hlthz stack`` cannot start or its state is unreadable
    └── CheckFailed                  exit 1: a check ran and found problems
        ├── GateFailed               ``replay compare``/``diff``: the candidate regressed
        ├── AlertsCheckFailed        ``alerts check``: promtool, amtool or the lint failed
        ├── DashboardCheckFailed     ``dashboards check``: lint findings or failing queries
        ├── StackUnhealthy           ``stack status``: a process stopped or does not answer
        ├── DiagnosisFailed          ``diagnose --fail-on``: a finding at that severity or above
        └── DemoError                ``demo``: the story could not be told

Packages re-export the leaves they raise (``hlthz.replay.GateFailed`` is this module's class).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
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
]


class HlthzError(Exception):
    """Base class of HLTHZ's errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 2


# --- exit 2: the input or the environment is wrong --------------------------------------------


class UsageError(HlthzError):
    """Bad arguments, options or input data (exit code 2)."""


class ConfigError(UsageError):
    """A configuration file or option is invalid: a thresholds file (``FILE:LINE: key: what is
    wrong``), an option of ``instrument()``, a demo API setting."""


class MultiprocessError(ConfigError):
    """``PROMETHEUS_MULTIPROC_DIR`` is missing, not a directory, or not writable."""


class SelectorError(ConfigError):
    """A ``selector`` is not a comma-separated list of PromQL label matchers."""


class PlanError(ConfigError):
    """A replay setting is invalid. ``field`` names it as the library spells it (``timeout``,
    ``schedule.speed``, ``master_bind``, ``report``) and ``problem`` says what is wrong, so
    ``str()`` is ``timeout: must be > 0 seconds, got 0``; the CLI shows the same problem after
    its own option name (``--timeout must be > 0 seconds, got 0``). A header's value is never
    part of the message."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class InputError(UsageError):
    """A file given as input is malformed. ``str()`` is ``FILE:LINE: what is wrong`` (the line
    is left out when it is 0: the problem is the file as a whole)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class CaptureFormatError(InputError):
    """A malformed capture or imported file (HAR, ``.gor``, access log)."""


class MissingDependency(UsageError):
    """An optional extra (``pip install 'hlthz[replay]'``) or an external program (promtool,
    amtool) is not installed; the message says what to install."""


class MissingExtra(MissingDependency, ModuleNotFoundError):
    """A module of an optional extra is not installed (raised by :func:`hlthz.extras.require`).

    ``str()`` is ``WHAT needs the 'EXTRA' extra: pip install 'hlthz[EXTRA]' (missing module:
    NAME)``. Also a :class:`ModuleNotFoundError` whose ``name`` is the module, so code that
    guards ``import hlthz.dashboards`` with ``except ImportError`` keeps working.
    """

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.what = what
        self.extra = extra
        super().__init__(
            f"{what} needs the {extra!r} extra: pip install 'hlthz[{extra}]' "
            f"(missing module: {module})",
            name=module,
        )

    def __reduce__(self) -> tuple[type[MissingExtra], tuple[str, str, str]]:
        return type(self), (self.what, self.extra, self.name or "")


class ReplayError(UsageError):
    """Bad usage of capture, replay, compare or diff: an option, an output path, a report."""


class DashboardError(UsageError):
    """Bad usage of the dashboard generator or checker: a setting or a dashboard file."""


class ServiceError(HlthzError):
    """A process or service HLTHZ starts or talks to is missing, failed to start or did not
    answer; the message names the binary, the address or the log file to read (exit code 2)."""


class TargetError(ServiceError):
    """The replay target cannot be reached."""


class PrometheusError(ServiceError):
    """Prometheus cannot be reached or does not answer like Prometheus."""


class QueryError(PrometheusError):
    """Prometheus answered, but rejected the query (bad PromQL, an unknown function, a range
    too long); ``str()`` is Prometheus' own message."""


class ScrapeError(ServiceError):
    """An application's metrics endpoint cannot be scraped or does not answer Prometheus text."""


class DatabaseError(ServiceError):
    """The demo API's database is unreachable or has no demo data."""


class ServiceUnavailable(ServiceError):
    """A demo API request could not get a database connection in time (the app answers 503
    with ``Retry-After``)."""


class StackError(ServiceError):
    """``hlthz stack`` cannot start, is already running, or its state is unreadable."""


# --- exit 1: a check ran and found problems ---------------------------------------------------


class CheckFailed(HlthzError):
    """A check or a gate ran and failed (exit code 1): a regression, a failing rule test.
    ``findings`` lists every problem when the check found several (see
    :class:`hlthz.checks.CheckReport`)."""

    exit_code = 1

    def __init__(self, message: str, findings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)


class GateFailed(CheckFailed):
    """A release gate failed: the candidate is slower, fails more or answers differently."""


class AlertsCheckFailed(CheckFailed):
    """``hlthz alerts check`` (or the drift check) found problems; ``findings`` lists them."""


class DashboardCheckFailed(CheckFailed):
    """The dashboards' lint or live query check found problems."""


class StackUnhealthy(CheckFailed):
    """``hlthz stack status`` found a process stopped or not answering."""


class DemoError(CheckFailed):
    """``hlthz demo`` could not tell its story: a step failed."""


class DiagnosisFailed(CheckFailed):
    """``hlthz diagnose --fail-on SEVERITY``: a finding at that severity or above."""
