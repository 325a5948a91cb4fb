"""The recording engine behind the middleware and the proxy: :class:`CaptureRecorder`.

The WSGI/ASGI adapters (:mod:`hlthz.replay.capture.middleware`) call :meth:`CaptureRecorder.wants`
and :meth:`CaptureRecorder.keep`, keep references to what the server already parsed, and hand
one tuple to :meth:`CaptureRecorder.offer`, which appends it to a bounded deque. A writer
thread wakes every ``flush_interval`` seconds, builds the records, redacts them, writes and
flushes them. When the deque is full the request is dropped from the capture and counted in
``replay_capture_dropped_total{reason="queue_full"}``; the request itself is never delayed.

A record counts as written (``written``, ``replay_capture_records_total``) only once its line
reached the file. If the capture file cannot be created or written (bad path, disk full),
recording stops with one error log line, ``replay_capture_write_errors_total`` goes up, and the
records the writer still held and every later request are counted as dropped with
``reason="write_error"``; the application keeps serving.
"""

from __future__ import annotations

import atexit
import collections
import fnmatch
import logging
import os
import random
import re
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from hlthz.replay.capture.format import CaptureRecord, CaptureWriter
from hlthz.replay.capture.redact import Redactor
from hlthz.replay.capture.select import sample_keeps

__all__ = ["DEFAULT_EXCLUDE", "CaptureMetrics", "CaptureRecorder"]

_log = logging.getLogger("hlthz.replay.capture.recorder")

DEFAULT_EXCLUDE: tuple[str, ...] = ("/metrics",)


class CaptureMetrics:
    """The recorder's metrics in one registry (created once per registry, shared by recorders)."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, CaptureMetrics] = (
        weakref.WeakKeyDictionary()
    )
    _lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.recorders: weakref.WeakSet[CaptureRecorder] = weakref.WeakSet()
        self.records = Counter(
            "replay_capture_records",
            "Requests written to a capture file.",
            registry=registry,
        )
        self.dropped = Counter(
            "replay_capture_dropped",
            "Sampled requests not written: queue_full (writer behind), write_error, closed, error.",
            ["reason"],
            registry=registry,
        )
        self.write_errors = Counter(
            "replay_capture_write_errors",
            "Failures to create or write a capture file; recording stops at the first.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "replay_capture_queue_depth",
            "Requests waiting for the capture writer thread.",
            registry=registry,
        )
        self.queue_depth.set_function(lambda: float(sum(len(r) for r in self.recorders)))
        self.dropped_queue_full = self.dropped.labels("queue_full")
        self.dropped_write_error = self.dropped.labels("write_error")
        self.dropped_closed = self.dropped.labels("closed")

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> CaptureMetrics:
        reg = REGISTRY if registry is None else registry
        with cls._lock:
            metrics = cls._by_registry.get(reg)
            if metrics is None:
                metrics = cls._by_registry[reg] = cls(reg)
            return metrics


def _compile_rules(rules: Iterable[str]) -> list[tuple[str | None, re.Pattern[str]]]:
    """``"GET /api/*"`` or ``"/health"`` -> (method or None, compiled path glob)."""
    compiled = []
    for rule in rules:
        method, _, pattern = rule.strip().rpartition(" ")
        compiled.append(
            (method.strip().upper() or None, re.compile(fnmatch.translate(pattern or "*")))
        )
    return compiled


def _matches(rules: list[tuple[str | None, re.Pattern[str]]], method: str, path: str) -> bool:
    return any((m is None or m == method) and p.match(path) for m, p in rules)


class CaptureRecorder:
    """Rules, sampling, the bounded queue and the writer thread behind one middleware.

    ``sample`` is the kept fraction (0..1). ``sample_key`` (``"header:X-Session"`` or
    ``"cookie:sessionid"``) makes sampling consistent: the same key value is always kept or
    always dropped, so whole sessions are captured; requests without the key fall back to random
    sampling. ``include``/``exclude`` are rules ``"[METHOD ]/path/glob*"``. ``max_body`` caps
    the bytes kept per body (longer bodies are cut and marked ``body_truncated``).
    """

    def __init__(
        self,
        out: str | os.PathLike[str] | CaptureWriter,
        *,
        source: str = "middleware",
        sample: float = 1.0,
        sample_key: str | None = None,
        include: Iterable[str] = (),
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        max_body: int = 64 * 1024,
        redactor: Redactor | None = None,
        queue_size: int = 10_000,
        registry: CollectorRegistry | None = None,
        max_bytes: int | None = None,
        max_files: int | None = None,
        flush_interval: float = 0.05,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be between 0 and 1, got {sample!r}")
        self.sample = sample
        self._key_kind: str | None = None
        self._key_name = ""
        if sample_key:
            kind, sep, name = sample_key.partition(":")
            if not sep or kind not in ("header", "cookie") or not name:
                raise ValueError(f"sample_key {sample_key!r}: use 'header:NAME' or 'cookie:NAME'")
            self._key_kind, self._key_name = kind, name
        self._wsgi_key = "HTTP_" + self._key_name.upper().replace("-", "_")
        self._asgi_key = self._key_name.lower().encode("latin-1")
        self.include = _compile_rules(include)
        self.exclude = _compile_rules(exclude)
        self.max_body = max_body
        self.redactor = redactor if redactor is not None else Redactor()
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.metrics = CaptureMetrics.for_registry(registry)
        self.metrics.recorders.add(self)
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        # True while the writer thread holds popped items not yet flushed to the file.
        self._draining = False
        self._id_prefix = secrets.token_hex(4)
        self._seq = 0
        #: Records written by this recorder and flushed to the file.
        self.written = 0
        #: Request bodies dropped because they could not be redacted (their records are
        #: marked ``body_dropped``; ``Redactor(keep_unparsed=True)`` keeps them).
        self.bodies_dropped = 0
        #: Set when recording stopped because the file could not be written.
        self.error: str | None = None
        self.closed = False
        self._writer: CaptureWriter | None = None
        self._template: str | None = None
        self._source = source
        self._rotation = (max_bytes, max_files)
        if isinstance(out, CaptureWriter):
            self._writer = out
        else:
            self._template = os.fspath(out)
            self._open_writer()
        self._start_thread()
        ref = weakref.ref(self)
        atexit.register(_close_ref, ref)
        os.register_at_fork(after_in_child=lambda: _after_fork_ref(ref))

    def _open_writer(self) -> None:
        assert self._template is not None
        # "{pid}" gives each worker process of a pre-fork or multi-process server its own file.
        path = self._template.replace("{pid}", str(os.getpid()))
        try:
            self._writer = CaptureWriter(
                path,
                source=self._source,
                header={"redaction": self.redactor.describe(), "sample": self.sample},
                max_bytes=self._rotation[0],
                max_files=self._rotation[1],
            )
        except OSError as exc:
            self._fail(f"cannot create capture file {path}: {exc.strerror or exc}")

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hlthz-capture-writer", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child: the writer thread is gone and the file belongs to the parent."""
        if self.closed:
            return
        if self._writer is not None:
            self._writer.abandon()  # its buffer holds the parent's records
        self._writer = None
        self._queue.clear()
        self.written = 0
        if self._template is not None and "{pid}" in self._template and self.error is None:
            self._open_writer()
        elif self.error is None:
            self._fail(
                f"a forked worker cannot share {self._template or 'the capture file'} with its "
                "parent; put {pid} in the capture path (e.g. capture-{pid}.jsonl)"
            )
        self._start_thread()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def path(self) -> Path | None:
        """The capture file being written (the first one when rotating)."""
        return self._writer.path if self._writer is not None else None

    # -- request path -----------------------------------------------------------------------

    def wants(self, method: str, path: str) -> bool:
        """Do the include/exclude rules keep this request?"""
        if self.include and not _matches(self.include, method, path):
            return False
        return not (self.exclude and _matches(self.exclude, method, path))

    def keep(self, key_value: str | None) -> bool:
        """The sampling decision, consistent for a given key value."""
        if self.sample >= 1.0:
            return True
        if key_value:
            return sample_keeps(key_value, self.sample)
        return random.random() < self.sample

    def offer(self, item: tuple[Any, ...]) -> None:
        """Queue one finished exchange; drop and count when full or stopped. Never blocks."""
        if self.error is not None:
            self.metrics.dropped_write_error.inc()
            return
        if self.closed:
            self.metrics.dropped_closed.inc()
            return
        if len(self._queue) >= self.queue_size:
            self.metrics.dropped_queue_full.inc()
            return
        self._queue.append(item)

    # -- writer thread ----------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        self.error = message
        self.metrics.write_errors.inc()
        _log.error("hlthz capture stopped: %s; the application keeps serving", message)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.flush_interval)
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        if not self._queue:
            return
        self._draining = True
        try:
            self._drain_into(self._writer)
        finally:
            self._draining = False

    def _drain_into(self, writer: CaptureWriter | None) -> None:
        """Write what is queued and flush. A record counts as written only once its line
        reached the file whole (:attr:`CaptureWriter.flushed`); when a write or the flush fails
        (disk full), the records still in the writer's buffer are counted as dropped with
        ``write_error``, never as written."""
        queue = self._queue
        given = 0  # records handed to the writer in this batch
        start = writer.flushed if writer is not None else 0
        try:
            while True:
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                if writer is None or self.error is not None:
                    self.metrics.dropped_write_error.inc()
                    continue
                try:
                    record, found = self.redactor.redact(self._build(item))
                except Exception:  # a bug must not kill the writer thread and stop capture
                    _log.exception("hlthz capture: could not record one request")
                    self.metrics.dropped.labels("error").inc()
                    continue
                given += 1
                self.bodies_dropped += found.bodies_dropped
                writer.write(record)
            if writer is not None and self.error is None:
                writer.flush()
        except OSError as exc:
            assert writer is not None
            self._fail(f"cannot write {writer.path}: {exc.strerror or exc}")
            writer.forget_pending()  # counted as dropped below: never written later
        if writer is None:
            return
        flushed = writer.flushed - start
        lost = given - flushed
        if lost > 0:
            self.metrics.dropped_write_error.inc(lost)
        if flushed:
            self.written += flushed
            self.metrics.records.inc(flushed)
        if self.error is not None:
            while queue:  # what is left after the failure
                queue.popleft()
                self.metrics.dropped_write_error.inc()

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self._id_prefix}-{self._seq:x}"

    def _session(self, value: str | None) -> str | None:
        # Keyed by the redaction key: workers sharing HLTHZ_REDACT_KEY name sessions alike,
        # so their captures merge; the value itself is never written.
        return self.redactor.session_id(value) if value else None

    def _build(self, item: tuple[Any, ...]) -> CaptureRecord:
        record = self._build_wsgi(*item[1:]) if item[0] == "wsgi" else self._build_asgi(*item[1:])
        if record.body and not record.extra.get("body_truncated"):
            # The body is stored de-chunked: describe it with a length a replayer can send.
            lengths = ("transfer-encoding", "content-length")
            headers = [(n, v) for n, v in record.headers if n.lower() not in lengths]
            headers.append(("content-length", str(len(record.body))))
            record.headers = headers
        return record

    def _build_wsgi(
        self,
        ts_ns: int,
        environ: dict[str, Any],
        body: bytes,
        truncated: bool,
        status: str | None,
        duration_ns: int,
    ) -> CaptureRecord:
        headers: list[tuple[str, str]] = []
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers.append((key[5:].replace("_", "-").title(), value))
        for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
            if environ.get(key):
                headers.append((name, environ[key]))
        path = _wsgi_path(environ)
        query = environ.get("QUERY_STRING", "")
        if query:
            path += "?" + query
        code = int(status.split(" ", 1)[0]) if status else None
        return CaptureRecord(
            id=self._next_id(),
            ts_ns=ts_ns,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            headers=headers,
            body=body,
            session=self._session(self._wsgi_key_value(environ)),
            status=code,
            duration_ns=duration_ns,
            extra={"body_truncated": True} if truncated else {},
        )

    def _build_asgi(
        self,
        ts_ns: int,
        request: tuple[str, bytes | None, str, str, bytes, list[tuple[bytes, bytes]]],
        body: bytes,
        truncated: bool,
        status: int | None,
        duration_ns: int,
    ) -> CaptureRecord:
        method, raw_path, root_path, scope_path, query, raw_headers = request
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
        path = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else root_path + scope_path
        if query:
            path += "?" + query.decode("latin-1")
        return CaptureRecord(
            id=self._next_id(),
            ts_ns=ts_ns,
            method=method,
            path=path,
            headers=headers,
            body=body,
            session=self._session(self._asgi_key_value(raw_headers)),
            status=status,
            duration_ns=duration_ns,
            extra={"body_truncated": True} if truncated else {},
        )

    # -- sampling keys ----------------------------------------------------------------------

    def _cookie(self, header: str | None) -> str | None:
        if not header:
            return None
        try:
            jar = SimpleCookie(header)
        except CookieError:
            return None
        morsel = jar.get(self._key_name)
        return morsel.value if morsel is not None else None

    def _wsgi_key_value(self, environ: dict[str, Any]) -> str | None:
        if self._key_kind == "header":
            value = environ.get(self._wsgi_key)
            return str(value) if value else None
        if self._key_kind == "cookie":
            return self._cookie(environ.get("HTTP_COOKIE"))
        return None

    def _asgi_key_value(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        if self._key_kind is None:
            return None
        wanted = self._asgi_key if self._key_kind == "header" else b"cookie"
        for key, value in raw_headers:
            if key.lower() == wanted:
                text = value.decode("latin-1")
                return text if self._key_kind == "header" else self._cookie(text)
        return None

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` s) until everything queued so far is written."""
        deadline = time.monotonic() + timeout
        while (
            (self._queue or self._draining)
            and time.monotonic() < deadline
            and self._thread.is_alive()
        ):
            time.sleep(self.flush_interval / 2)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the thread and close the file. Idempotent."""
        if self.closed:
            return
        self._stop.set()
        self._thread.join(timeout)
        self.closed = True
        if not self._thread.is_alive():
            self._drain()  # what arrived while the thread was finishing
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                if self.error is None:
                    self._fail(f"cannot close {self._writer.path}: {exc.strerror or exc}")


def _close_ref(ref: weakref.ref[CaptureRecorder]) -> None:
    recorder = ref()
    if recorder is not None:
        recorder.close()


def _after_fork_ref(ref: weakref.ref[CaptureRecorder]) -> None:
    recorder = ref()
    if recorder is not None:
        recorder._after_fork()


def _wsgi_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw).split("?", 1)[0]
    script = environ.get("SCRIPT_NAME", "")
    path = environ.get("PATH_INFO", "") or "/"
    # PEP 3333 strings are latin-1 decoded bytes; re-encode to get the original UTF-8 path.
    return (script + path).encode("latin-1").decode("utf-8", "replace")
