"""hlthz.replay: capture production traffic safely, replay it honestly, gate releases.

Two halves share this package: capture (format v1, redaction, recording middleware and proxy,
importers, export, inspect) and replay (engine, timing, reports, compare, diff).
"""

from hlthz.replay.errors import CaptureFormatError, GateFailed, ReplayError, TargetError

# --- capture API (owned by the capture work) ---

# --- replay API (owned by the replay-engine work) ---

__all__ = [
    "CaptureFormatError",
    "GateFailed",
    "ReplayError",
    "TargetError",
    # --- capture names ---
    # --- replay names ---
]
