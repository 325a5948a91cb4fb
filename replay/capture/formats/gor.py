"""GoReplay ``.gor`` files (plain or gzip): read them as capture records, write captures as them.

GoReplay writes each message as a header line ``TYPE ID TIMESTAMP [LATENCY]`` (type ``1``
request, ``2`` original response, ``3`` replayed response; versions before 1.2 omit the
latency), then the raw HTTP/1.x message, then the separator ``\\n🐵🙈🙉\\n`` (protocol.go,
output_file.go). ``TIMESTAMP`` is when the message's first packet was seen (ns); for types 1 and
2 ``LATENCY`` is that message's *own* duration, first to last packet (input_raw.go), not the
round trip. So requests become records and an original response, paired by id, fills in
``status`` and ``duration_ns`` = the response's timestamp minus the request's: the time from
the request's first packet to the response's first packet. Replayed responses are ignored.

Cut messages are never imported as whole: a last message without its separator that stops
inside its head or body (a file being written, a killed writer) is skipped with one warning
``FILE:LINE: truncated record skipped``; a message cut inside its head elsewhere in the file is
skipped the same way; a complete message whose body is shorter than its ``Content-Length``
(GoReplay's ``--copy-buffer-size`` cut it) is imported with ``body_truncated``.

Requests wait in a bounded window for their response so a file of any size streams in constant
memory: a request leaves the window when its response arrives or when the window is full.

:func:`export_gor` writes each record as a type ``1`` request payload (``1 ID TIMESTAMP_NS 0``
then the raw HTTP/1.1 request with a ``Content-Length`` matching the body) and, when the
original status is known, a type ``2`` response payload stamped at the request's time plus the
original duration, exactly the pairing :func:`iter_gor` reads back, so ``gor --input-file``
can replay it. The file is written under a temporary name and renamed when complete. A ``.gz``
output name writes gzip, which GoReplay reads too.
"""

from __future__ import annotations

import collections
import gzip
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from hlthz.errors import CaptureFormatError, ReplayError
from hlthz.inputs import encoding_problem, excerpt
from hlthz.replay.capture.format import (
    CaptureRecord,
    ReadStats,
    iter_file_chunks,
    open_temporary,
    reject_line,
)
from hlthz.replay.capture.formats.http1 import (
    ParsedMessage,
    build_request,
    build_response,
    origin_form,
    parse_message,
)

__all__ = ["GOR_SEPARATOR", "export_gor", "iter_gor"]


GOR_SEPARATOR = "\n🐵🙈🙉\n".encode()
_WINDOW = 10_000
#: The longest GoReplay message read (GoReplay itself cuts bodies at its copy buffer, 5 MB).
MAX_MESSAGE_BYTES = 64 << 20
_log = logging.getLogger("hlthz.replay.capture")


def _payloads(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line of the header, payload, complete)`` for each message; the last one may lack its
    separator (``complete`` false): GoReplay accepts that, or the writer was killed.

    Linear in the file: the buffer is searched only where a separator can newly start, and
    consumed messages are cut off in one go per chunk. A message longer than
    ``MAX_MESSAGE_BYTES`` is refused naming its line.
    """
    buf = bytearray()
    line = 1
    sep_lines = GOR_SEPARATOR.count(b"\n")
    searched = 0
    for index, chunk in enumerate(iter_file_chunks(path)):
        if index == 0:
            # Else a UTF-16 or binary file reads as one message without a separator, and is
            # reported as a truncated record.
            problem = encoding_problem(chunk[:4])
            if problem is not None:
                raise CaptureFormatError(str(path), 1, f"{problem}; is this a GoReplay file?")
        buf += chunk
        start = 0
        while True:
            idx = buf.find(GOR_SEPARATOR, max(start, searched - len(GOR_SEPARATOR) + 1))
            if idx < 0:
                break
            payload = bytes(buf[start:idx])
            yield line, payload, True
            line += payload.count(b"\n") + sep_lines
            start = idx + len(GOR_SEPARATOR)
            searched = start
        if start:
            del buf[:start]
            searched -= start
        searched = max(searched, len(buf))
        if len(buf) > MAX_MESSAGE_BYTES:
            raise CaptureFormatError(
                str(path),
                line,
                f"a message longer than {MAX_MESSAGE_BYTES >> 20} MiB without a GoReplay "
                "separator; is this a GoReplay file?",
            )
    if bytes(buf).strip():
        yield line, bytes(buf), False


def _truncated(name: str, line: int, stats: ReadStats | None) -> None:
    if stats is not None:
        stats.truncated += 1
    _log.warning("%s:%d: truncated record skipped", name, line)


def iter_gor(
    path: str | os.PathLike[str], *, skip_invalid: bool = False, stats: ReadStats | None = None
) -> Iterator[CaptureRecord]:
    """Stream the requests of a GoReplay file, with original status and round trip when the
    file holds the original responses."""
    p = Path(path)
    name = str(p)
    pending: collections.OrderedDict[str, CaptureRecord] = collections.OrderedDict()
    early: dict[str, tuple[int | None, int]] = {}  # responses seen before their request
    for line, payload, complete in _payloads(p):
        header, nl, raw = payload.partition(b"\n")
        fields = header.decode("latin-1").split(" ")
        msg: ParsedMessage | None = None
        try:
            if not nl or len(fields) not in (3, 4) or fields[0] not in ("1", "2", "3"):
                raise ValueError("expected a GoReplay header line 'TYPE ID TIMESTAMP [LATENCY]'")
            kind, rid = fields[0], fields[1]
            try:
                ts_ns = int(fields[2])
            except ValueError:
                raise ValueError("the GoReplay header's TIMESTAMP is not an integer") from None
            if kind != "3":
                msg = parse_message(raw)
                if msg.status is None:
                    origin_form(msg.target)  # a target that is no URL is a bad message
        except ValueError as exc:
            message = f"{exc}; is this a GoReplay file?"
            if reject_line(
                name, line, message, complete=complete, skip_invalid=skip_invalid, stats=stats
            ):
                break
            continue
        if msg is None:
            continue  # a replayed response: not part of the original traffic
        if not msg.head_complete or (not complete and not msg.body_complete):
            # Cut inside its head, or a torn tail: never imported as a whole message.
            _truncated(name, line, stats)
            if not complete:
                break
            continue
        if kind == "1":
            if msg.status is not None:
                if skip_invalid:
                    if stats is not None:
                        stats.invalid += 1
                    continue
                raise CaptureFormatError(name, line, "type 1 (request) payload holds a response")
            if msg.method == "-" or not msg.method:
                continue
            status, response_ts = early.pop(rid, (None, None))
            if rid in pending:  # the id came round again: its first request waited long enough
                yield pending.pop(rid)
            pending[rid] = CaptureRecord(
                id=rid,
                ts_ns=ts_ns,
                method=msg.method,
                path=origin_form(msg.target),
                headers=msg.headers,
                body=msg.body,
                status=status,
                duration_ns=_round_trip(ts_ns, response_ts),
                extra={} if msg.body_complete else {"body_truncated": True},
            )
        else:
            record = pending.get(rid)
            if record is not None and record.status is None:
                record.status = msg.status
                record.duration_ns = _round_trip(record.ts_ns, ts_ns)
            elif record is None and len(early) < _WINDOW:
                early[rid] = (msg.status, ts_ns)
        # Emit in file order every request whose response arrived, or that waited too long.
        while pending:
            first_id, first = next(iter(pending.items()))
            if first.status is None and len(pending) <= _WINDOW:
                break
            del pending[first_id]
            yield first
    yield from pending.values()


def _round_trip(request_ts: int, response_ts: int | None) -> int | None:
    """First request packet to first response packet; unknown when the clock went backwards."""
    if response_ts is None or response_ts < request_ts:
        return None
    return response_ts - request_ts


_ID_OK = re.compile(r"^[0-9A-Za-z]+$")


def _gor_id(record: CaptureRecord, index: int) -> str:
    # GoReplay ids are hex without spaces or dashes; keep ours when they qualify.
    return record.id if _ID_OK.match(record.id) else f"{index:024x}"


def export_gor(records: Iterable[CaptureRecord], out: str | os.PathLike[str]) -> int:
    """Write ``records`` to ``out`` in GoReplay's file format (0600); return how many.

    The file appears only when complete: it is written under a temporary name next to ``out``
    and renamed, so an error (a malformed input line, a full disk) leaves no partial file.
    """
    path = Path(out)
    tmp, raw = open_temporary(path)
    fh = (
        cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", mtime=0))
        if path.name.endswith(".gz")
        else raw
    )
    count = 0
    try:
        try:
            for index, record in enumerate(records):
                gid = _gor_id(record, index)
                try:
                    request = build_request(record.method, record.path, record.headers, record.body)
                except ValueError as exc:
                    raise ReplayError(
                        f"record {excerpt(record.id)}: {exc}; HTTP/1.1 cannot carry it, so "
                        "GoReplay could not replay it (leave it out: replay import --exclude-route)"
                    ) from None
                fh.write(f"1 {gid} {record.ts_ns} 0\n".encode() + request + GOR_SEPARATOR)
                if record.status is not None:
                    # Stamped so that reading it back gives the same round trip; its own
                    # duration (the 4th field) is unknown: 0.
                    ts = record.ts_ns + (record.duration_ns or 0)
                    fh.write(
                        f"2 {gid} {ts} 0\n".encode() + build_response(record.status) + GOR_SEPARATOR
                    )
                count += 1
        finally:
            if fh is not raw:
                fh.close()
            raw.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
