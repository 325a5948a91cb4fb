"""hlthz.replay.capture: the capture half of :mod:`hlthz.replay`.

Capture format v1 (docs/formats.md), redaction before anything touches disk, the recording
middleware (``recording(app, "capture.jsonl")``) and proxy, other tools' formats (GoReplay, HAR,
nginx logs) and inspect. It never imports the replay half, and needs nothing beyond the base
install except the recording proxy (uvicorn, in ``hlthz[replay]``): an app records itself
with a plain ``pip install hlthz``.
"""

from hlthz.errors import CaptureFormatError
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
from hlthz.replay.capture.rewrite import Rewrite
from hlthz.replay.capture.sources import detect_format, iter_records

__all__ = [
    "CaptureFormatError",
    "CaptureReader",
    "CaptureRecord",
    "CaptureRecorder",
    "CaptureWriter",
    "ReadStats",
    "Redactor",
    "Rewrite",
    "detect_format",
    "iter_records",
    "read_capture",
    "recording",
]
