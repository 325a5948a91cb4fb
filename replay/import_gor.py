"""Read GoReplay ``.gor`` files (plain or gzip) as capture records.

GoReplay writes each message as a header line ``TYPE ID TIMESTAMP [LATENCY]`` (type ``1``
request, ``2`` original response, ``3`` replayed response; older versions omit the latency),
then the raw HTTP/1.x message, then the separator ``\\n🐵🙈🙉\\n``. Requests become records;
original responses paired by id fill in ``status`` and ``duration_ns`` (GoReplay's latency is
the round trip in nanoseconds); replayed responses are ignored.

Requests wait in a bounded window for their response so a file of any size streams in constant
memory: a request leaves the window when its response arrives or when the window is full.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from pathlib import Path

from hlthz.replay.capture import CaptureRecord, ReadStats, iter_file_chunks, reject_line
from hlthz.replay.errors import CaptureFormatError
from hlthz.replay.http1 import parse_message, request_path

__all__ = ["GOR_SEPARATOR", "iter_gor"]


GOR_SEPARATOR = "\n🐵🙈🙉\n".encode()
_WINDOW = 10_000


def _payloads(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line of the header, payload, complete)`` for each message; the last one may lack its
    separator (``complete`` false): GoReplay accepts that, or the writer was killed."""
    buf = b""
    line = 1
    sep_lines = GOR_SEPARATOR.count(b"\n")
    for chunk in iter_file_chunks(path):
        buf += chunk
        while True:
            idx = buf.find(GOR_SEPARATOR)
            if idx < 0:
                break
            payload = buf[:idx]
            yield line, payload, True
            line += payload.count(b"\n") + sep_lines
            buf = buf[idx + len(GOR_SEPARATOR) :]
    if buf.strip():
        yield line, buf, False


def iter_gor(
    path: str | os.PathLike[str], *, skip_invalid: bool = False, stats: ReadStats | None = None
) -> Iterator[CaptureRecord]:
    """Stream the requests of a GoReplay file, with original status and latency when present."""
    p = Path(path)
    name = str(p)
    pending: collections.OrderedDict[str, CaptureRecord] = collections.OrderedDict()
    early: dict[str, tuple[int | None, int | None]] = {}  # responses seen before the request
    for line, payload, complete in _payloads(p):
        header, nl, raw = payload.partition(b"\n")
        fields = header.decode("latin-1").split(" ")
        try:
            if not nl or len(fields) not in (3, 4) or fields[0] not in ("1", "2", "3"):
                raise ValueError(
                    "expected a GoReplay header 'TYPE ID TIMESTAMP [LATENCY]' "
                    f"but found {header[:60]!r}"
                )
            kind, rid, ts_ns = fields[0], fields[1], int(fields[2])
            latency = int(fields[3]) if len(fields) == 4 and fields[3] not in ("", "-1") else None
            if kind == "3":
                continue
            msg = parse_message(raw)
        except ValueError as exc:
            message = f"{exc}; is this a GoReplay file?"
            if reject_line(
                name, line, message, complete=complete, skip_invalid=skip_invalid, stats=stats
            ):
                break
            continue
        if kind == "1":
            if msg.status is not None:
                if skip_invalid:
                    if stats is not None:
                        stats.invalid += 1
                    continue
                raise CaptureFormatError(name, line, "type 1 (request) payload holds a response")
            status, duration = early.pop(rid, (None, None))
            pending[rid] = CaptureRecord(
                id=rid,
                ts_ns=ts_ns,
                method=msg.method,
                path=request_path(msg.target),
                headers=msg.headers,
                body=msg.body,
                status=status,
                duration_ns=duration,
            )
        else:
            record = pending.get(rid)
            if record is not None:
                record.status = msg.status
                record.duration_ns = latency if latency is not None and latency >= 0 else None
            elif len(early) < _WINDOW:
                early[rid] = (msg.status, latency)
        # Emit in file order every request whose response arrived, or that waited too long.
        while pending:
            first_id, first = next(iter(pending.items()))
            if first.status is None and len(pending) <= _WINDOW:
                break
            del pending[first_id]
            yield first
    yield from pending.values()
