"""``replay import`` and ``replay export`` as library calls: read, redact, write.

Redaction happens between reading and writing, so a secret in a GoReplay file, a HAR or a log
never reaches the capture written by :func:`import_traffic`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hlthz.errors import ReplayError
from hlthz.replay.capture.format import CaptureWriter, ReadStats
from hlthz.replay.capture.formats.gor import export_gor
from hlthz.replay.capture.redact import RedactionStats, Redactor
from hlthz.replay.capture.sources import detect_format, iter_records

__all__ = ["ConversionResult", "export_traffic", "import_traffic"]


@dataclass
class ConversionResult:
    """What an import or export did."""

    source_format: str
    records: int = 0
    invalid: int = 0
    truncated: int = 0
    redactions: RedactionStats = field(default_factory=RedactionStats)
    outputs: list[Path] = field(default_factory=list)


def import_traffic(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "auto",
    log_format: str | None = None,
    redactor: Redactor | None = None,
    skip_invalid: bool = False,
    max_bytes: int | None = None,
) -> ConversionResult:
    """Convert ``src`` (gor, har, nginx or an hlthz capture) to a redacted v1 capture ``out``."""
    kind = detect_format(src) if format == "auto" else format
    redactor = redactor if redactor is not None else Redactor()
    stats = ReadStats()
    result = ConversionResult(source_format=kind)
    if Path(out).resolve() == Path(src).resolve():
        raise ReplayError(f"-o {out}: the output would overwrite the input; choose another path")
    records = iter_records(
        src, format=kind, log_format=log_format, skip_invalid=skip_invalid, stats=stats
    )
    try:
        writer = CaptureWriter(
            out,
            source=f"import:{kind}:{Path(src).name}",
            header={"redaction": redactor.describe()},
            max_bytes=max_bytes,
        )
    except OSError as exc:
        raise ReplayError(f"-o {out}: cannot create ({exc.strerror or exc})") from None
    try:
        with writer:
            for record in records:
                redacted, found = redactor.redact(record)
                result.redactions.add(found)
                writer.write(redacted)
    except BaseException:
        # A half-written capture looks valid; do not leave one behind.
        for path in writer.paths:
            path.unlink(missing_ok=True)
        raise
    if stats.records == 0:
        # An empty capture would replay as a silent no-op: say what went wrong instead.
        for path in writer.paths:
            path.unlink(missing_ok=True)
        raise ReplayError(
            f"{src}: no {kind} requests found ({stats.invalid} invalid, {stats.truncated} "
            "truncated); check --format and --log-format"
        )
    result.records = stats.records
    result.invalid = stats.invalid
    result.truncated = stats.truncated
    result.outputs = list(writer.paths)
    return result


def export_traffic(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str = "gor",
    skip_invalid: bool = False,
) -> ConversionResult:
    """Write the capture ``src`` in another tool's format (today: GoReplay ``gor``)."""
    if format != "gor":
        raise ReplayError(f"--format {format!r}: export supports 'gor'")
    kind = detect_format(src)  # before creating ``out``: a missing input leaves nothing behind
    if Path(out).resolve() == Path(src).resolve():
        # export_gor truncates ``out`` before reading the first record: that would be ``src``.
        raise ReplayError(f"-o {out}: the output would overwrite the input; choose another path")
    stats = ReadStats()
    records = iter_records(src, format=kind, skip_invalid=skip_invalid, stats=stats)
    try:
        export_gor(records, out)
    except OSError as exc:
        Path(out).unlink(missing_ok=True)
        raise ReplayError(f"-o {out}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        # A malformed input line stopped the export: a partial .gor would look complete.
        Path(out).unlink(missing_ok=True)
        raise
    return ConversionResult(
        source_format=kind,
        records=stats.records,
        invalid=stats.invalid,
        truncated=stats.truncated,
        outputs=[Path(out)],
    )
