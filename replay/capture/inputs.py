"""Several traffic files read as one stream in time order: what ``replay import``, ``inspect``
and ``export`` read.

- **Inputs** are paths or glob patterns (``'captures/shop-*.jsonl'``, the per-worker ``{pid}``
  files of one recording): :func:`expand_inputs` resolves them in a stable order; a pattern
  that matches nothing is an error.
- **Time order.** Each file passes through a bounded reorder buffer (nginx logs a request when
  it *ends*, a recorder writes in completion order, so send times are a little out of order),
  then the files are merged by send time. A record earlier than one already passed on, beyond
  the buffer, is kept where it is and counted; one warning per file says how many and by how
  much (replay sends such a record right after its predecessor).
- **Unique ids.** With more than one file every id is prefixed with the file's number
  (``2-log-17``): access logs and HARs number their lines the same way, and GoReplay pairs
  requests and responses by id.
"""

from __future__ import annotations

import glob
import heapq
import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hlthz.errors import ReplayError
from hlthz.replay.capture.format import CaptureRecord, ReadStats
from hlthz.replay.capture.sources import detect_format, iter_records

__all__ = ["REORDER_WINDOW", "InputFile", "expand_inputs", "merged_records"]

#: Records held per merge to put them back in time order (shared by the files merged).
REORDER_WINDOW = 50_000
_MIN_WINDOW = 1_000
_GLOB_CHARS = frozenset("*?[")
_log = logging.getLogger("hlthz.replay.capture")


@dataclass
class InputFile:
    """One input: its path, its format and what reading it found."""

    path: Path
    format: str
    stats: ReadStats = field(default_factory=ReadStats)
    #: The largest lateness (ns) of a record out of order beyond the reorder buffer.
    worst_late_ns: int = 0


def expand_inputs(patterns: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Paths for ``patterns``: existing files as given, glob patterns expanded (sorted); each
    file once. Raise :class:`ReplayError` for a missing file or a pattern matching nothing."""
    paths: list[Path] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        if Path(text).is_file() or not (_GLOB_CHARS & set(text)):
            paths.append(Path(text))
            continue
        matches = sorted(p for p in glob.glob(text) if Path(p).is_file())
        if not matches:
            raise ReplayError(f"{text}: no file matches this pattern")
        paths.extend(Path(p) for p in matches)
    if not paths:
        raise ReplayError("no input file given")
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _reordered(
    records: Iterable[CaptureRecord], window: int, source: InputFile
) -> Iterator[CaptureRecord]:
    """``records`` in send-time order as far as a buffer of ``window`` records allows."""
    heap: list[tuple[int, int, CaptureRecord]] = []
    last = None
    counter = itertools.count()
    for record in records:
        heapq.heappush(heap, (record.ts_ns, next(counter), record))
        if len(heap) > window:
            ts, _, out = heapq.heappop(heap)
            if last is not None and ts < last:
                source.stats.out_of_order += 1
                source.worst_late_ns = max(source.worst_late_ns, last - ts)
            else:
                last = ts
            yield out
    while heap:
        ts, _, out = heapq.heappop(heap)
        if last is not None and ts < last:
            source.stats.out_of_order += 1
            source.worst_late_ns = max(source.worst_late_ns, last - ts)
        else:
            last = ts
        yield out


def merged_records(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    format: str = "auto",
    log_format: str | None = None,
    skip_invalid: bool = False,
    stats: ReadStats | None = None,
    files: list[InputFile] | None = None,
    window: int = REORDER_WINDOW,
) -> Iterator[CaptureRecord]:
    """Every record of ``inputs`` (paths or globs), merged in send-time order (see the module
    docstring). ``stats`` receives the summed counts; ``files`` (a list) receives one
    :class:`InputFile` per file as they are opened, with each file's counts."""
    paths = expand_inputs(inputs)
    opened: list[InputFile] = []
    for path in paths:
        kind = detect_format(path) if format == "auto" else format
        opened.append(InputFile(path=path, format=kind))
    if log_format is not None and not any(f.format == "nginx" for f in opened):
        raise ReplayError(
            f"--log-format only applies to nginx logs, but {opened[0].path} is {opened[0].format!r}"
        )
    if files is not None:
        files.extend(opened)
    per_file = max(_MIN_WINDOW, window // len(opened))
    streams = []
    for index, source in enumerate(opened, 1):
        records = iter_records(
            source.path,
            format=source.format,
            log_format=log_format if source.format == "nginx" else None,
            skip_invalid=skip_invalid,
            stats=source.stats,
        )
        ordered = _reordered(records, per_file, source)
        streams.append(_renamed(ordered, f"{index}-") if len(opened) > 1 else ordered)
    try:
        yield from heapq.merge(*streams, key=lambda record: record.ts_ns)
    finally:
        for source in opened:
            if source.stats.out_of_order:
                _log.warning(
                    "%s: %d record%s out of time order by up to %.3f s (beyond a %d-record "
                    "reorder buffer); kept in file order, replayed right after the record "
                    "before",
                    source.path,
                    source.stats.out_of_order,
                    "s" if source.stats.out_of_order > 1 else "",
                    source.worst_late_ns / 1e9,
                    per_file,
                )
            if stats is not None:
                stats.add(source.stats)


def _renamed(records: Iterable[CaptureRecord], prefix: str) -> Iterator[CaptureRecord]:
    for record in records:
        record.id = prefix + record.id
        yield record
