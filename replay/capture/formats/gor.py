"""GoReplay ``.gor`` files (plain or gzip): read them as capture records, write captures as them.

GoReplay writes each message as a header line ``TYPE ID TIMESTAMP [LATENCY]`` (type ``1``
request, ``2`` original response, ``3`` replayed response; older versions omit the latency),
then the raw HTTP/1.x message, then the separator ``\\n🐵🙈🙉\\n``. Requests become records;
original responses paired by id fill in ``status`` and ``duration_ns`` (GoReplay's latency is
the round trip in nanoseconds); replayed responses are ignored.

Requests wait in a bounded window for their response so a file of any size streams in constant
memory: a request leaves the window when its response arrives or when the window is full.

:func:`export_gor` writes each record as a type ``1`` request payload (``1 ID TIMESTAMP_NS 0``
then the raw HTTP/1.1 request with a ``Content-Length`` matching the body) and, when the
original status is known, a type ``2`` response payload carrying that status and the original
latency, exactly the pairing :func:`iter_gor` reads back, so ``gor --input-file`` can replay it.
A ``.gz`` output name writes gzip, which GoReplay reads too.
"""

from __future__ import annotations

import collections
import gzip
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from hlthz.errors import CaptureFormatError
from hlthz.net import request_target
from hlthz.replay.capture.format import CaptureRecord, ReadStats, iter_file_chunks, reject_line
from hlthz.replay.capture.formats.http1 import (
    build_request,
    build_response,
    parse_message,
)

__all__ = ["GOR_SEPARATOR", "export_gor", "iter_gor"]


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
                path=request_target(msg.target),
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


_ID_OK = re.compile(r"^[0-9A-Za-z]+$")


def _gor_id(record: CaptureRecord, index: int) -> str:
    # GoReplay ids are hex without spaces or dashes; keep ours when they qualify.
    return record.id if _ID_OK.match(record.id) else f"{index:024x}"


def export_gor(records: Iterable[CaptureRecord], out: str | os.PathLike[str]) -> int:
    """Write ``records`` to ``out`` in GoReplay's file format (0600); return how many."""
    path = Path(out)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    raw: IO[bytes] = os.fdopen(fd, "wb")
    fh = (
        cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", mtime=0))
        if path.name.endswith(".gz")
        else raw
    )
    count = 0
    try:
        for index, record in enumerate(records):
            gid = _gor_id(record, index)
            request = build_request(record.method, record.path, record.headers, record.body)
            fh.write(f"1 {gid} {record.ts_ns} 0\n".encode() + request + GOR_SEPARATOR)
            if record.status is not None:
                ts = record.ts_ns + (record.duration_ns or 0)
                latency = record.duration_ns if record.duration_ns is not None else -1
                fh.write(
                    f"2 {gid} {ts} {latency}\n".encode()
                    + build_response(record.status)
                    + GOR_SEPARATOR
                )
            count += 1
    finally:
        if fh is not raw:
            fh.close()
        raw.close()
    return count
