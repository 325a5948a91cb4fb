"""One entry point for every traffic file hlthz reads: :func:`iter_records`.

Formats: ``hlthz`` (capture v1), ``gor`` (GoReplay), ``har`` (HAR 1.2) and ``nginx`` (access
logs: recognised formats, JSON lines, or ``log_format=``). ``format="auto"`` looks at the first
bytes (after gunzipping): an ``{"hlthz_capture"`` header, JSON lines (an ``escape=json`` access
log), a ``{`` JSON document with ``"log"`` (HAR), a GoReplay ``1 ID TS`` header line; anything
else is read as an access log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from hlthz.errors import CaptureFormatError, HlthzError, ReplayError
from hlthz.inputs import excerpt, parse_json
from hlthz.replay.capture._files import record_problem
from hlthz.replay.capture.format import CaptureRecord, ReadStats, iter_file_chunks, read_capture
from hlthz.replay.capture.formats.gor import iter_gor
from hlthz.replay.capture.formats.har import iter_har
from hlthz.replay.capture.formats.nginx import iter_nginx

__all__ = ["FORMATS", "detect_format", "iter_records"]

FORMATS = ("auto", "hlthz", "gor", "har", "nginx")
_GOR_HEAD = re.compile(rb"^[123] [0-9A-Za-z]+ \d+( -?\d+)?\n")


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess the format of ``path`` from its first bytes; one of ``FORMATS`` minus ``auto``."""
    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"{p}: no such file; give the path of a capture or traffic file")
    head = b""
    try:
        for chunk in iter_file_chunks(p):
            head += chunk
            if len(head) >= 4096:
                break
    except OSError as exc:  # no read permission, an I/O error: one line, not a traceback
        raise ReplayError(f"{p}: cannot read ({exc.strerror or exc})") from None
    text = head.lstrip()
    first_line = text.split(b"\n", 1)[0]
    if text.startswith(b'{"hlthz_capture"') or (
        text.startswith(b"{") and b"hlthz_capture" in first_line
    ):
        return "hlthz"
    if text.startswith(b"{"):
        try:
            first = parse_json(first_line, source=str(p))
        except HlthzError:
            first = None
        if isinstance(first, dict) and "log" not in first and b"\n" in text:
            return "nginx"  # JSON lines: an escape=json access log
        if b'"log"' in head:
            return "har"
    if _GOR_HEAD.match(head):
        return "gor"
    if p.suffix in (".har",) or p.name.endswith(".har.gz"):
        return "har"
    return "nginx"


def iter_records(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    log_format: str | None = None,
    skip_invalid: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[CaptureRecord]:
    """Stream :class:`CaptureRecord` objects from any file ``hlthz replay import`` reads.

    ``log_format`` applies to ``nginx`` only. With ``skip_invalid`` malformed lines/entries are
    skipped and counted in ``stats.invalid`` instead of raising :class:`CaptureFormatError`.
    Records are not redacted here: redaction happens before anything is written.
    """
    if format not in FORMATS:
        raise ReplayError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    kind = detect_format(path) if format == "auto" else format
    if kind != "nginx" and log_format is not None:
        raise ReplayError(f"--log-format only applies to nginx logs, but {path} is {kind!r}")
    if kind == "hlthz":
        reader = read_capture(path, skip_invalid=skip_invalid)
        yield from reader
        if stats is not None:
            stats.records += reader.records
            stats.invalid += reader.invalid
            stats.truncated += reader.truncated
        return
    if kind == "gor":
        records = iter_gor(path, skip_invalid=skip_invalid, stats=stats)
    elif kind == "har":
        records = iter_har(path, skip_invalid=skip_invalid, stats=stats)
    else:
        records = iter_nginx(path, log_format=log_format, skip_invalid=skip_invalid, stats=stats)
    try:
        for record in records:
            problem = record_problem(
                record.ts_ns,
                record.method,
                record.path,
                record.headers,
                record.status,
                record.duration_ns,
            )
            if problem:
                # Refused here, not later by inspect or replay run: the importers build
                # records from fields that parse but need not make sense (a year-9999 time).
                if skip_invalid:
                    if stats is not None:
                        stats.invalid += 1
                    continue
                raise CaptureFormatError(
                    str(path), 0, f"record {excerpt(record.id)}: {problem}; fix the source"
                )
            if stats is not None:
                stats.records += 1
            yield record
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read ({exc.strerror or exc})") from None
