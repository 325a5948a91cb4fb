"""hlthz.replay: capture production traffic safely, replay it honestly, gate releases.

Two halves share this package: capture (format v1, redaction, recording middleware and proxy,
importers, export, inspect) and replay (engine, timing, reports, compare, diff).
"""

# ruff: noqa: E402 (the extras check below runs before the imports it guards)
from hlthz.extras import require

# One line naming the extra instead of a traceback from deep inside the imports below.
require("replay", "hdrh", "httpx", what="hlthz.replay")

# One sorted import block (ruff's isort would merge per-owner blocks); each half's names are
# grouped by owner in __all__ below.
from hlthz.errors import CaptureFormatError, GateFailed, PlanError, ReplayError, TargetError
from hlthz.replay.capture.format import (
    CaptureReader,
    CaptureRecord,
    CaptureWriter,
    ReadStats,
    read_capture,
)
from hlthz.replay.capture.middleware import recording
from hlthz.replay.capture.recorder import CaptureRecorder
from hlthz.replay.capture.redact import Redactor
from hlthz.replay.capture.sources import detect_format, iter_records
from hlthz.replay.compare import Comparison, Gate, compare_reports
from hlthz.replay.diff import DiffResult, run_diff
from hlthz.replay.engine import run_replay
from hlthz.replay.html_report import write_html
from hlthz.replay.plan import ReplayPlan
from hlthz.replay.report import Report, RouteReport, print_summary
from hlthz.replay.schedule import ScheduleOptions

__all__ = [
    "CaptureFormatError",
    "GateFailed",
    "PlanError",
    "ReplayError",
    "TargetError",
]
# --- capture names (owned by the capture work) ---
__all__ += [
    "CaptureReader",
    "CaptureRecord",
    "CaptureRecorder",
    "CaptureWriter",
    "ReadStats",
    "Redactor",
    "detect_format",
    "iter_records",
    "read_capture",
    "recording",
]
# --- replay names (owned by the replay-engine work) ---
__all__ += [
    "Comparison",
    "DiffResult",
    "Gate",
    "ReplayPlan",
    "Report",
    "RouteReport",
    "ScheduleOptions",
    "compare_reports",
    "print_summary",
    "run_diff",
    "run_replay",
    "write_html",
]
