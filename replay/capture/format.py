"""Capture format v1: one JSON object a line, a header first, plain or gzip.

A capture is written by the recording middleware, the recording proxy and ``replay import``, and
read by ``replay run``, ``inspect`` and ``export``. The format is built to survive a crash: each
record is one line, so a process killed mid-write leaves every complete record readable and at
most one torn line at the end, which the reader skips with a single warning. Gzip captures are
decoded with a raw :mod:`zlib` stream so a file without its gzip trailer still yields every byte
that was flushed.

Files are created with mode 0600 (captures hold real user traffic, even when redacted) and can
rotate by size: ``out.jsonl``, then ``out.1.jsonl``, ``out.2.jsonl`` ... each with its own header.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import errno
import fcntl
import gzip
import io
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from hlthz.errors import CaptureFormatError, HlthzError, InputError, ReplayError
from hlthz.inputs import parse_json
from hlthz.replay.capture._files import iter_file_chunks as iter_file_chunks
from hlthz.replay.capture._files import iter_numbered_lines, record_problem

__all__ = [
    "FORMAT_VERSION",
    "CaptureReader",
    "CaptureRecord",
    "CaptureWriter",
    "ReadStats",
    "encode_record",
    "read_capture",
    "read_header",
]

FORMAT_VERSION = 1

_log = logging.getLogger("hlthz.replay.capture")

# Keys written by this version; anything else in a line lands in ``CaptureRecord.extra``.
_KNOWN_KEYS = frozenset(
    ("id", "ts_ns", "method", "path", "headers", "body_b64", "session", "status", "duration_ns")
)
_CHUNK = 1 << 16


@dataclass(slots=True)
class CaptureRecord:
    """One captured request (capture format v1, docs/formats.md).

    ``ts_ns`` is the send time in nanoseconds since the epoch, ``path`` is path plus query,
    ``headers`` keeps order and repeats, ``status``/``duration_ns`` describe the original response
    when known. ``extra`` holds additional keys (e.g. ``body_truncated``) written next to the
    standard ones and read back verbatim.
    """

    id: str
    ts_ns: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    session: str | None = None
    status: int | None = None
    duration_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), else ``default``."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written for this record."""
        obj: dict[str, Any] = {
            "id": self.id,
            "ts_ns": self.ts_ns,
            "method": self.method,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers],
            "body_b64": base64.b64encode(self.body).decode("ascii") if self.body else "",
            "session": self.session,
            "status": self.status,
            "duration_ns": self.duration_ns,
        }
        for key, value in self.extra.items():
            if key not in _KNOWN_KEYS:
                obj[key] = value
        return obj

    @classmethod
    def from_dict(cls, obj: Any, *, where: tuple[str, int] = ("<record>", 0)) -> CaptureRecord:
        """Validate one parsed line; raise :class:`CaptureFormatError` naming ``where``."""
        path, line = where
        if not isinstance(obj, dict):
            raise CaptureFormatError(path, line, "expected a JSON object")
        try:
            rid, ts_ns, method, rpath = obj["id"], obj["ts_ns"], obj["method"], obj["path"]
            raw_headers = obj.get("headers", [])
            body_b64 = obj.get("body_b64", "") or ""
        except KeyError as exc:
            raise CaptureFormatError(path, line, f"missing field {exc.args[0]!r}") from None
        if not isinstance(rid, str) or not isinstance(method, str) or not isinstance(rpath, str):
            raise CaptureFormatError(path, line, "'id', 'method' and 'path' must be strings")
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
            raise CaptureFormatError(path, line, "'ts_ns' must be an integer (ns since epoch)")
        headers = _headers(raw_headers, where)
        try:
            body = base64.b64decode(body_b64, validate=True) if body_b64 else b""
        except (binascii.Error, TypeError, ValueError):
            raise CaptureFormatError(path, line, "'body_b64' is not valid base64") from None
        status, duration = obj.get("status"), obj.get("duration_ns")
        for name, value in (("status", status), ("duration_ns", duration)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise CaptureFormatError(path, line, f"{name!r} must be an integer or null")
        session = obj.get("session")
        if session is not None and not isinstance(session, str):
            raise CaptureFormatError(path, line, "'session' must be a string or null")
        problem = record_problem(ts_ns, method, rpath, headers, status, duration, http=False)
        if problem:
            raise CaptureFormatError(path, line, problem)
        extra = (
            {}  # the usual case, settled in C
            if obj.keys() <= _KNOWN_KEYS
            else {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
        )
        return cls(
            id=rid,
            ts_ns=ts_ns,
            method=method,
            path=rpath,
            headers=headers,
            body=body,
            session=session,
            status=status,
            duration_ns=duration,
            extra=extra,
        )


def _headers(raw: Any, where: tuple[str, int]) -> list[tuple[str, str]]:
    """A record's ``headers`` as (name, value) pairs; a plain loop, as this runs for every
    header of every record read."""
    headers: list[tuple[str, str]] = []
    if isinstance(raw, list):
        for pair in raw:
            if not isinstance(pair, list) or len(pair) != 2:
                break
            name, value = pair
            if not isinstance(name, str) or not isinstance(value, str):
                break
            headers.append((name, value))
        else:
            return headers
    raise CaptureFormatError(*where, "'headers' must be a list of [name, value]")


@dataclass
class ReadStats:
    """What a reader found: the ``records`` it yielded, ``invalid`` lines/entries skipped (with
    ``skip_invalid``), ``truncated`` records skipped (a torn tail, or a GoReplay message cut
    inside its head), ``not_requests``: lines that are no request (nginx's 400 lines for
    garbage or TLS handshakes), ``out_of_order`` records earlier than one already read beyond
    the reorder window, and ``detail``: how the file was read (the nginx log format used)."""

    records: int = 0
    invalid: int = 0
    truncated: int = 0
    not_requests: int = 0
    out_of_order: int = 0
    detail: str = ""

    def add(self, other: ReadStats) -> None:
        """Add ``other``'s counts (``detail`` is per file and not merged)."""
        self.records += other.records
        self.invalid += other.invalid
        self.truncated += other.truncated
        self.not_requests += other.not_requests
        self.out_of_order += other.out_of_order


def reject_line(
    name: str,
    line: int,
    message: str,
    *,
    complete: bool,
    skip_invalid: bool,
    stats: ReadStats | None,
) -> bool:
    """Apply the importers' policy to a line they cannot parse.

    An incomplete last line (a writer killed mid-line) is a torn tail: warn once and return
    ``True`` (stop reading). Otherwise count and return ``False`` (skip it) with
    ``skip_invalid``, or raise :class:`CaptureFormatError` naming ``name:line``.
    """
    if not complete:
        if stats is not None:
            stats.truncated = 1
        _log.warning("%s:%d: truncated record skipped", name, line)
        return True
    if skip_invalid:
        if stats is not None:
            stats.invalid += 1
        return False
    raise CaptureFormatError(name, line, message) from None


def _encode_line(obj: dict[str, Any]) -> bytes:
    # ensure_ascii keeps every line pure ASCII: no encoding surprises, and a torn multi-byte
    # character can never turn a torn line into a valid one.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def _is_gzip_name(path: Path) -> bool:
    return path.name.endswith(".gz")


def _rotated_name(path: Path, index: int) -> Path:
    if index == 0:
        return path
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            return path.with_name(f"{name[: -len(suffix)]}.{index}{suffix}")
    return path.with_name(f"{name}.{index}")


def open_temporary(path: Path) -> tuple[Path, IO[bytes]]:
    """A new private (0600) file next to ``path`` (``.NAME.XXXX.tmp``) to be renamed onto it
    once complete, so no reader and no failure ever leaves half a file under ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        return Path(tmp), os.fdopen(fd, "wb", buffering=0)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def _open_private(path: Path) -> IO[bytes]:
    """Create (or truncate) ``path`` with mode 0600 whatever the umask is, and lock it.

    The exclusive ``flock`` stops two processes (workers of one server started with the same
    path) from interleaving lines in one file; the file is truncated only once the lock is ours.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(
                errno.EBUSY,
                "another process is writing it (give each worker its own file: put {pid} in "
                "the path)",
                str(path),
            ) from None
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)  # the file may have existed with wider permissions
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb", buffering=0)


class CaptureWriter:
    """Write a v1 capture: ``with CaptureWriter(path, source="proxy") as w: w.write(record)``.

    ``path`` ending in ``.gz`` writes gzip. ``max_bytes`` rotates to ``NAME.1.jsonl`` and so on
    once a file holds that many (uncompressed) bytes; ``max_files`` then deletes the oldest so at
    most that many files exist. ``header`` adds keys to the header line. Not thread-safe: one
    writer thread owns it (the recorder does exactly that).

    ``atomic=True`` (``replay import``) writes every file under a temporary name and renames
    them into place only in :meth:`close`; :meth:`discard` (or leaving a ``with`` block by an
    exception) removes them, so a failed or interrupted conversion leaves no partial capture.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str,
        header: dict[str, Any] | None = None,
        max_bytes: int | None = None,
        max_files: int | None = None,
        atomic: bool = False,
    ) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if max_files is not None and max_files < 1:
            raise ValueError("max_files must be at least 1")
        self.path = Path(path)
        self.source = source
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._header_extra = dict(header or {})
        self._gzip = _is_gzip_name(self.path)
        self._index = 0
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._buffered: io.BufferedWriter | None = None
        self._pending = bytearray()  # encoded lines not yet handed to the OS
        self._ends: list[int] = []  # where each buffered record's line ends in _pending
        self._size = 0
        self._atomic = atomic
        self._temps: dict[Path, Path] = {}  # final name -> temporary name (atomic mode)
        #: Every file this writer created, oldest first (rotation may have deleted some).
        self.paths: list[Path] = []
        #: Records written so far, over all files (some may still be buffered).
        self.records = 0
        #: Records whose line reached the file whole (handed to the OS), over all files.
        self.flushed = 0
        self.closed = False
        self._open_next()

    def _open_next(self) -> None:
        path = _rotated_name(self.path, self._index)
        if self._atomic:
            tmp, self._raw = open_temporary(path)
            self._temps[path] = tmp
        else:
            self._raw = _open_private(path)
        # gzip writes through a buffered file: it retries short writes, which gzip ignores.
        self._buffered = io.BufferedWriter(cast(Any, self._raw), _CHUNK) if self._gzip else None
        self._gz = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._buffered, mtime=0)
            if self._buffered is not None
            else None
        )
        self.paths.append(path)
        self._size = 0
        header = {
            "hlthz_capture": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
            "source": self.source,
            **self._header_extra,
        }
        if self._index:
            header["part"] = self._index
        self._pending += _encode_line(header)
        self._size = len(self._pending)
        if self.max_files is not None:
            while len(self.paths) > self.max_files:
                old = self.paths.pop(0)
                with contextlib.suppress(FileNotFoundError):
                    self._temps.pop(old, old).unlink()

    def write(self, record: CaptureRecord) -> None:
        """Append one record, rotating first when the current file is full. Records are
        buffered: :attr:`flushed` says how many reached the file."""
        if self.closed:
            raise ValueError("write to a closed CaptureWriter")
        line = _encode_line(record.to_dict())
        if self.max_bytes is not None and self._size + len(line) > self.max_bytes and self.records:
            self._close_current()
            self._index += 1
            self._open_next()
        self._pending += line
        self._ends.append(len(self._pending))
        self._size += len(line)
        self.records += 1
        if len(self._pending) >= _CHUNK:
            self._push()

    def _push(self) -> None:
        """Hand the buffered lines to the OS, counting in :attr:`flushed` every record whose
        line was written whole, also when the write fails part way (then it raises)."""
        if not self._pending:
            return
        pending, ends = self._pending, self._ends
        self._pending, self._ends = bytearray(), []
        assert self._raw is not None
        if self._gz is not None:
            # Compressed bytes do not map to records: the batch counts only once flushed.
            assert self._buffered is not None
            self._gz.write(pending)
            self._gz.flush(zlib.Z_SYNC_FLUSH)  # ends the deflate block: readable up to here
            self._buffered.flush()
            self.flushed += len(ends)
            return
        view = memoryview(pending)
        done = 0
        try:
            while done < len(view):
                done += self._raw.write(view[done:]) or 0
        finally:
            self.flushed += sum(1 for end in ends if end <= done)

    def flush(self) -> None:
        """Push buffered records to the OS so a crash after this loses none of them; raises
        :class:`OSError` (disk full) after counting in :attr:`flushed` what was written."""
        if self._raw is None:
            return
        self._push()

    def forget_pending(self) -> None:
        """Throw away the records not yet handed to the OS (after a failed write)."""
        self._pending, self._ends = bytearray(), []

    def abandon(self) -> None:
        """Forget the file without writing anything more to it (in a forked child process).

        The child inherited the parent's buffers; flushing them would write the parent's
        records twice. The inherited descriptor is pointed at ``/dev/null`` so whatever
        flushes it later (garbage collection, interpreter exit) writes nowhere.
        """
        self._pending, self._ends = bytearray(), []
        if self._raw is not None and not self._raw.closed:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._raw.fileno())
            finally:
                os.close(devnull)
        self.closed = True

    def _close_current(self) -> None:
        try:
            self._push()
            if self._gz is not None and self._buffered is not None:
                self._gz.close()  # the gzip trailer
                self._buffered.flush()
        finally:
            if self._buffered is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._buffered.close()
            if self._raw is not None:
                self._raw.close()
            self._gz = self._buffered = None
            self._raw = None

    def close(self) -> None:
        """Flush and close; idempotent. In atomic mode, move the files into place."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close_current()
            for final, tmp in self._temps.items():
                os.replace(tmp, final)
        except BaseException:
            if self._atomic:
                self.discard()  # a conversion that failed leaves nothing
            raise  # a recording keeps what reached its file (a torn tail at most)
        self._temps.clear()

    def discard(self) -> None:
        """Close and delete what this writer wrote (atomic mode: its temporary files)."""
        self.closed = True
        self._pending, self._ends = bytearray(), []
        with contextlib.suppress(OSError):
            self._close_current()
        for path in self.paths:
            with contextlib.suppress(OSError):
                self._temps.get(path, path).unlink()
        self._temps.clear()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self._atomic:
            self.discard()
        else:
            self.close()


def _problem(message: str) -> str:
    # The syntax error's detail helps nobody fix a capture line; out-of-range numbers do.
    return "not valid JSON" if message.startswith("not valid JSON") else message


class _NotJson(InputError):
    """A capture line that is not strict JSON (a torn tail, or a malformed line)."""


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header object of a v1 capture; raise :class:`CaptureFormatError` if there is none."""
    p = Path(path)
    for lineno, line, complete in iter_numbered_lines(p):
        if lineno != 1:
            return _parse_header(str(p), b"")  # line 1 is blank: raises, no header
        if not complete:
            raise CaptureFormatError(str(p), 1, "truncated header; not a complete capture")
        return _parse_header(str(p), line)
    raise CaptureFormatError(str(p), 1, "empty file; expected a {'hlthz_capture': 1} header")


def _parse_header(path: str, line: bytes) -> dict[str, Any]:
    try:
        header = parse_json(line, source=path, line=1)
    except CaptureFormatError:
        raise
    except HlthzError:
        header = None
    if not isinstance(header, dict) or "hlthz_capture" not in header:
        raise CaptureFormatError(
            path, 1, "not an hlthz capture (line 1 must be a {'hlthz_capture': 1} header)"
        )
    if header["hlthz_capture"] != FORMAT_VERSION:
        raise CaptureFormatError(
            path,
            1,
            f"capture format version {header['hlthz_capture']!r} is not supported "
            f"(this hlthz reads version {FORMAT_VERSION})",
        )
    return header


class CaptureReader:
    """A streaming iterator over the records of one v1 capture file.

    Complete records come out in file order. A torn last line (the writer was killed mid-line) is
    skipped with one warning ``FILE:LINE: truncated record skipped``. Any other malformed line
    raises :class:`CaptureFormatError` naming file and line, unless ``skip_invalid`` is true:
    then it is skipped and counted in :attr:`invalid`. After iteration, :attr:`records`,
    :attr:`invalid` and :attr:`truncated` (0 or 1) say what was read, and :attr:`header` holds
    the header object.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        skip_invalid: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.skip_invalid = skip_invalid
        self.header: dict[str, Any] = {}
        self.records = 0
        self.invalid = 0
        self.truncated = 0
        self._warn = warn or _log.warning
        self._it = self._iterate()

    def __iter__(self) -> CaptureReader:
        return self

    def __next__(self) -> CaptureRecord:
        return next(self._it)

    def _iterate(self) -> Iterator[CaptureRecord]:
        name = str(self.path)
        try:
            first = True
            for lineno, raw, complete in iter_numbered_lines(self.path):
                if first:
                    first = False
                    if lineno != 1:
                        _parse_header(name, b"")  # line 1 is blank: raises, no header
                    if not complete:
                        self.truncated = 1
                        self._warn(f"{name}:1: truncated header skipped; the capture is empty")
                        return
                    self.header = _parse_header(name, raw)
                    continue
                try:
                    record = CaptureRecord.from_dict(
                        parse_json(raw, source=name, line=lineno, error=_NotJson),
                        where=(name, lineno),
                    )
                except (_NotJson, CaptureFormatError) as exc:
                    if not complete:
                        self.truncated = 1
                        self._warn(f"{name}:{lineno}: truncated record skipped")
                        return
                    if self.skip_invalid:
                        self.invalid += 1
                        continue
                    if isinstance(exc, CaptureFormatError):
                        raise
                    raise CaptureFormatError(
                        name,
                        lineno,
                        f"{_problem(exc.message)}; fix or remove the line, or pass --skip-invalid",
                    ) from None
                self.records += 1
                yield record
        except OSError as exc:
            raise ReplayError(f"{name}: cannot read ({exc.strerror or exc})") from None


def read_capture(
    path: str | os.PathLike[str],
    *,
    skip_invalid: bool = False,
    warn: Callable[[str], None] | None = None,
) -> CaptureReader:
    """Stream the records of a v1 capture (``.jsonl`` or ``.jsonl.gz``); see :class:`CaptureReader`.

    ``warn`` receives the one-line truncation warning (default: the ``hlthz.replay.capture``
    logger).
    """
    return CaptureReader(path, skip_invalid=skip_invalid, warn=warn)


def encode_record(record: CaptureRecord) -> bytes:
    """The exact line (with ``\\n``) :class:`CaptureWriter` writes for ``record``."""
    return _encode_line(record.to_dict())
