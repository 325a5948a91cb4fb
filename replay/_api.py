"""The replay half's public names in one module, imported by ``hlthz.replay`` on first use."""

from hlthz.replay.compare import Allow, Comparison, Gate, GateOptions, compare_reports
from hlthz.replay.diff import DiffResult, run_diff
from hlthz.replay.engine import run_replay
from hlthz.replay.html_report import write_html
from hlthz.replay.plan import ReplayPlan
from hlthz.replay.report import Report, RouteReport, print_summary
from hlthz.replay.schedule import ScheduleOptions

__all__ = [
    "Allow",
    "Comparison",
    "DiffResult",
    "Gate",
    "GateOptions",
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
