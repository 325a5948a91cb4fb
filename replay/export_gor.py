"""Write captures as GoReplay ``.gor`` files, so ``gor --input-file`` can replay them.

Each record becomes a type ``1`` request payload (``1 ID TIMESTAMP_NS 0`` then the raw
HTTP/1.1 request with a ``Content-Length`` matching the body) and, when the original status is
known, a type ``2`` response payload carrying that status and the original latency, exactly the
pairing :mod:`hlthz.replay.import_gor` reads back. A ``.gz`` output name writes gzip, which
GoReplay reads too.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO, cast

from hlthz.replay.capture import CaptureRecord
from hlthz.replay.http1 import build_request, build_response
from hlthz.replay.import_gor import GOR_SEPARATOR

__all__ = ["export_gor"]

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
