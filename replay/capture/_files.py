"""Bounded reading of traffic files: gunzip with a bomb cap, lines with a length cap, and the
checks every record passes before it counts as read.

A gzip file may expand to at most ``max(64 MiB, 200 x its compressed size)`` (real captures and
logs compress 5-30x; a gzip bomb about 1000x); ``HLTHZ_MAX_DECOMPRESSED`` (bytes, or a size
like ``8GiB``) sets a fixed cap instead, for a genuine file above it. A line may be at most
``MAX_LINE_BYTES`` long, and lines are found in time linear in the file, however long.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from hlthz.errors import CaptureFormatError

#: The longest line a capture or log may have (a capture line holds a base64 body).
MAX_LINE_BYTES = 64 << 20
#: A send time must fit in signed 64-bit nanoseconds (1970 to 2262): what Prometheus,
#: datetime and every reader can handle.
MAX_TS_NS = 2**63 - 1
_CHUNK = 1 << 16
_GZIP_RATIO = 200
_GZIP_FLOOR = 64 << 20
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.I)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
_BAD_CHARS = re.compile(r"[\r\n\0]")


def _size_text(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _cap(path: Path, compressed: int) -> tuple[int, str]:
    configured = os.environ.get("HLTHZ_MAX_DECOMPRESSED", "")
    match = _SIZE.match(configured) if configured else None
    if match:
        unit = (match.group(2) or "B").upper()[:1]
        scale = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
        cap = int(match.group(1)) * scale
        return cap, f"HLTHZ_MAX_DECOMPRESSED={configured}"
    cap = max(_GZIP_FLOOR, _GZIP_RATIO * compressed)
    return cap, f"{_size_text(cap)}: {_GZIP_RATIO} x its compressed size, at least 64 MiB"


def iter_file_chunks(path: Path) -> Iterator[bytes]:
    """Bytes of ``path``, gunzipped when it starts with the gzip magic, tolerant of a torn end;
    a decompressed size above the cap raises :class:`CaptureFormatError` naming the cap."""
    with open(path, "rb") as fh:
        first = fh.read(_CHUNK)
        if not first.startswith(b"\x1f\x8b"):
            while first:
                yield first
                first = fh.read(_CHUNK)
            return
        cap, said = _cap(path, os.fstat(fh.fileno()).st_size)
        total = 0
        # wbits=31: gzip container. A new decompressor per member handles concatenated members.
        decomp = zlib.decompressobj(31)
        data = first
        while data:
            while data:
                try:
                    # At most one chunk out per call, so a bomb never sits in memory whole.
                    out = decomp.decompress(data, _CHUNK * 4)
                except zlib.error:
                    return  # corrupt compressed data: stop; the reader reports the torn tail
                data = decomp.unconsumed_tail
                if out:
                    total += len(out)
                    if total > cap:
                        raise CaptureFormatError(
                            str(path),
                            0,
                            f"decompresses to more than {said} (a gzip bomb?); if the file is "
                            "genuine, set HLTHZ_MAX_DECOMPRESSED=16GiB",
                        )
                    yield out
                if decomp.eof:
                    data = decomp.unused_data + data
                    decomp = zlib.decompressobj(31)
                    if not data:
                        break
            data = fh.read(_CHUNK)
        tail = decomp.flush()
        if tail:
            yield tail


_BLANK_RUN = re.compile(rb"[ \t\r\n]*\n")


def iter_numbered_lines(
    path: Path, *, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, line, complete)`` of every line holding more than white space.

    Runs of blank lines are skipped in one regular-expression step, so a file (or a gzip
    bomb) of millions of empty lines costs no Python loop per line.
    """
    parts: list[bytes] = []
    size = 0
    lineno = 0
    for chunk in iter_file_chunks(path):
        start = 0
        while True:
            if not parts:
                blank = _BLANK_RUN.match(chunk, start)
                if blank is not None:
                    lineno += chunk.count(b"\n", start, blank.end())
                    start = blank.end()
            end = chunk.find(b"\n", start)
            if end < 0:
                piece = chunk[start:]
                size += len(piece)
                if piece:
                    parts.append(piece)
                if size > max_line:
                    raise CaptureFormatError(
                        str(path),
                        lineno + 1,
                        f"line longer than {_size_text(max_line)}; is this a capture or log?",
                    )
                break
            lineno += 1
            parts.append(chunk[start:end])
            if size + end - start > max_line:
                raise CaptureFormatError(
                    str(path),
                    lineno,
                    f"line longer than {_size_text(max_line)}; is this a capture or log?",
                )
            line = parts[0] if len(parts) == 1 else b"".join(parts)
            if line.strip():
                yield lineno, line, True
            parts, size = [], 0
            start = end + 1
    if parts:
        line = b"".join(parts)
        if line.strip():
            yield lineno + 1, line, False


def record_problem(
    ts_ns: int,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    status: int | None = None,
    duration_ns: int | None = None,
    *,
    http: bool = True,
) -> str | None:
    """What makes a record unusable by the rest of hlthz (its send time out of range, a method
    that is no HTTP token, a line break in the path or a header), or None. Never quotes a value:
    headers and paths may hold secrets. ``http=False`` checks only the numbers: a capture may
    hold any strings (the export escapes or refuses what HTTP cannot carry)."""
    if not 0 <= ts_ns <= MAX_TS_NS:
        return "the send time is out of range (must be between 1970 and 2262)"
    if status is not None and not 0 <= status <= 999:
        return "the status is not an HTTP status code (0 to 999)"
    if duration_ns is not None and not 0 <= duration_ns <= MAX_TS_NS:
        return "the duration is out of range"
    if not http:
        return None
    if not _TOKEN.match(method):
        return "the method is not an HTTP method token (like GET)"
    if _BAD_CHARS.search(path):
        return "the path contains a line break or NUL"
    for name, value in headers:
        if not _TOKEN.match(name):
            return "a header name is not an HTTP token"
        if _BAD_CHARS.search(value):
            return f"header {name}: the value contains a line break or NUL"
    return None
