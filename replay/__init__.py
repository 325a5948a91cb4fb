"""hlthz.replay: capture production traffic safely, replay it honestly, gate releases.

Two halves, imports going one way (replay -> capture):

- capture (:mod:`hlthz.replay.capture`): format v1, redaction, the recording middleware and
  proxy, importers, export, inspect. Its names are re-exported here and need only the base
  install, so ``from hlthz.replay import recording`` works in any app.
- replay: the plan, the engine on locust, timing, reports, compare, diff. Its names load on
  first use and need ``pip install 'hlthz[replay]'``; without it, using one raises
  :class:`hlthz.errors.MissingExtra` naming the extra (one line in the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hlthz.errors import CaptureFormatError, GateFailed, PlanError, ReplayError, TargetError
from hlthz.replay.capture import (
    CaptureReader,
    CaptureRecord,
    CaptureRecorder,
    CaptureWriter,
    ReadStats,
    Redactor,
    detect_format,
    iter_records,
    read_capture,
    recording,
)

if TYPE_CHECKING:
    from hlthz.replay.compare import Allow, Comparison, Gate, GateOptions, compare_reports
    from hlthz.replay.diff import DiffResult, run_diff
    from hlthz.replay.engine import run_replay
    from hlthz.replay.html_report import write_html
    from hlthz.replay.plan import ReplayPlan
    from hlthz.replay.report import Report, RouteReport, print_summary
    from hlthz.replay.schedule import ScheduleOptions

__all__ = [
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
]

# The replay half's names (those of __all__ not imported above) load on first use (PEP 562), so
# the capture half stays importable on a base install.
_REPLAY_HALF = frozenset(__all__) - set(globals())


def __getattr__(name: str) -> Any:
    if name not in _REPLAY_HALF:
        raise AttributeError(f"module 'hlthz.replay' has no attribute {name!r}")
    from hlthz.extras import require

    require("replay", what=f"hlthz.replay.{name}")
    from hlthz.replay import _api

    value = getattr(_api, name)
    globals()[name] = value  # looked up once
    return value
