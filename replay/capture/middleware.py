"""Recording middleware for WSGI and ASGI apps: ``app = recording(app, "capture.jsonl")``.

The adapters here keep the request path short: check the rules and the sampling decision, note
the time, keep references to what the server already parsed, and hand one tuple to the
:class:`~hlthz.replay.capture.recorder.CaptureRecorder` when the response is done. Everything else
(building the record, redaction, JSON, the disk) happens on the recorder's writer thread.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from hlthz.replay.capture.format import CaptureWriter
from hlthz.replay.capture.recorder import CaptureRecorder

__all__ = ["ASGIRecorder", "WSGIRecorder", "recording"]

WSGIApp = Callable[..., Iterable[bytes]]
ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]

_BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


class _TeeInput:
    """A ``wsgi.input`` that keeps the first ``cap`` bytes the app reads."""

    def __init__(self, inner: Any, cap: int) -> None:
        self._inner = inner
        self._cap = cap
        self.kept = bytearray()
        self.truncated = False

    def _keep(self, data: bytes) -> bytes:
        room = self._cap - len(self.kept)
        if len(data) > room:
            self.truncated = True
        if room > 0:
            self.kept += data[:room]
        return data

    def read(self, size: int = -1) -> bytes:
        return self._keep(
            self._inner.read(size) if size is not None and size >= 0 else self._inner.read()
        )

    def readline(self, size: int = -1) -> bytes:
        return self._keep(
            self._inner.readline(size) if size is not None and size >= 0 else self._inner.readline()
        )

    def readlines(self, hint: int = -1) -> list[bytes]:
        return [self._keep(line) for line in self._inner.readlines(hint)]

    def __iter__(self) -> Iterator[bytes]:
        for line in self._inner:
            yield self._keep(line)


class _WSGIExchange:
    """Wraps the response iterable; queues the record when the server closes it."""

    __slots__ = (
        "_body",
        "_environ",
        "_recorder",
        "_result",
        "_start",
        "_t0",
        "_tee",
        "_ts",
        "status",
    )

    def __init__(
        self,
        recorder: CaptureRecorder,
        start: Callable[..., Any],
        environ: dict[str, Any],
        ts: int,
        t0: int,
        body: bytes,
        tee: _TeeInput | None,
    ) -> None:
        self._recorder = recorder
        self._start = start
        self._environ = environ
        self._ts = ts
        self._t0 = t0
        self._body = body
        self._tee = tee
        self._result: Iterable[bytes] = ()
        self.status: str | None = None

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        return self._start(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()

    def finish(self) -> None:
        tee = self._tee
        body, truncated = (
            (bytes(tee.kept), tee.truncated) if tee is not None else (self._body, False)
        )
        self._recorder.offer(
            (
                "wsgi",
                self._ts,
                self._environ,
                body,
                truncated,
                self.status,
                time.perf_counter_ns() - self._t0,
            )
        )


class WSGIRecorder:
    """A WSGI app that records requests to ``recorder`` and serves them with ``app``."""

    def __init__(self, app: WSGIApp, recorder: CaptureRecorder) -> None:
        self.app = app
        self.recorder = recorder

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        rec = self.recorder
        method = environ.get("REQUEST_METHOD", "GET")
        if not rec.wants(method, environ.get("PATH_INFO", "/")) or not rec.keep(
            rec._wsgi_key_value(environ) if rec._key_kind else None
        ):
            return self.app(environ, start_response)
        ts = time.time_ns()
        t0 = time.perf_counter_ns()
        snapshot = environ.copy()  # the app may rewrite PATH_INFO & co.
        body = b""
        tee: _TeeInput | None = None
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH")
        if stream is not None and (length or environ.get("wsgi.input_terminated")):
            try:
                size = int(length) if length else -1
            except ValueError:
                size = -1
            if 0 <= size <= rec.max_body:
                # Small bodies are read whole so they are captured even if the app ignores them.
                body = stream.read(size) if size else b""
                environ["wsgi.input"] = io.BytesIO(body)
            else:
                tee = environ["wsgi.input"] = _TeeInput(stream, rec.max_body)
        exchange = _WSGIExchange(rec, start_response, snapshot, ts, t0, body, tee)
        try:
            exchange._result = self.app(environ, exchange.start_response)
        except BaseException:
            exchange.status = exchange.status or "500 Internal Server Error"
            exchange.finish()
            raise
        return exchange

    def close(self) -> None:
        """Flush and close the capture (call on shutdown)."""
        self.recorder.close()


class ASGIRecorder:
    """An ASGI app that records HTTP requests to ``recorder`` and serves them with ``app``.

    Lifespan shutdown closes the recorder after the app has shut down.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], recorder: CaptureRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        rec = self.recorder
        method = scope.get("method", "GET")
        if not rec.wants(method, scope.get("path", "/")) or not rec.keep(
            rec._asgi_key_value(scope.get("headers") or ()) if rec._key_kind else None
        ):
            await self.app(scope, receive, send)
            return
        ts = time.time_ns()
        t0 = time.perf_counter_ns()
        # A snapshot: middleware further in may rewrite the scope while the request runs.
        request = (
            method,
            scope.get("raw_path"),
            scope.get("root_path", ""),
            scope.get("path", "/"),
            scope.get("query_string") or b"",
            list(scope.get("headers") or ()),
        )
        chunks: list[bytes] = []
        kept = 0
        truncated = False
        status: int | None = None
        done = False
        cap = rec.max_body

        def _keep(message: ASGIMessage) -> None:
            nonlocal kept, truncated
            data = message.get("body", b"")
            if data:
                room = cap - kept
                if len(data) > room:
                    truncated = True
                if room > 0:
                    piece = data[:room]
                    chunks.append(piece)
                    kept += len(piece)

        early: list[ASGIMessage] = []
        if method in _BODY_METHODS and 0 < _content_length(request[5]) <= cap:
            # A small body is read up front, so it is captured even if the app never reads it
            # (a 404, a validation error); the app then receives the same messages.
            while True:
                message = await receive()
                early.append(message)
                if message["type"] != "http.request":
                    break
                _keep(message)
                if not message.get("more_body", False):
                    break
            early.reverse()

        async def _receive() -> ASGIMessage:
            if early:
                return early.pop()
            message = await receive()
            if message["type"] == "http.request":
                _keep(message)
            return message

        async def _send(message: ASGIMessage) -> None:
            nonlocal status, done
            mtype = message["type"]
            if mtype == "http.response.start":
                status = message["status"]
            elif mtype == "http.response.body" and not message.get("more_body", False):
                await send(message)
                if not done:
                    done = True
                    rec.offer(
                        (
                            "asgi",
                            ts,
                            request,
                            b"".join(chunks),
                            truncated,
                            status,
                            time.perf_counter_ns() - t0,
                        )
                    )
                return
            await send(message)

        try:
            await self.app(scope, _receive, _send)
        finally:
            if not done:
                # The app failed or the client left: still record the request it was sent.
                done = True
                rec.offer(
                    (
                        "asgi",
                        ts,
                        request,
                        b"".join(chunks),
                        truncated,
                        status or 500,
                        time.perf_counter_ns() - t0,
                    )
                )

    async def _lifespan(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        async def _send(message: ASGIMessage) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            # Apps without lifespan support raise; the server then shuts down without telling
            # us, so atexit closes the recorder.
            pass

    def close(self) -> None:
        """Flush and close the capture (call on shutdown if the server has no lifespan)."""
        self.recorder.close()


def _is_asgi(app: Any) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - classes with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def recording(
    app: Any,
    out: str | os.PathLike[str] | CaptureWriter,
    *,
    sample: float = 1.0,
    kind: str | None = None,
    **options: Any,
) -> WSGIRecorder | ASGIRecorder:
    """Wrap a WSGI or ASGI ``app`` so its requests are recorded to ``out`` (a v1 capture).

    ``kind`` forces ``"wsgi"`` or ``"asgi"`` when detection (an ``async`` callable is ASGI)
    guesses wrong. Other options go to :class:`CaptureRecorder`: ``sample_key``, ``include``,
    ``exclude``, ``max_body``, ``redactor``, ``queue_size``, ``registry``, ``max_bytes``,
    ``max_files``, ``flush_interval``, ``source``. Call ``.close()`` on shutdown (ASGI lifespan
    and interpreter exit do it too).
    """
    if kind not in (None, "wsgi", "asgi"):
        raise ValueError(f"kind must be 'wsgi' or 'asgi', got {kind!r}")
    is_asgi = kind == "asgi" or (kind is None and _is_asgi(app))
    options.setdefault("source", "asgi-middleware" if is_asgi else "wsgi-middleware")
    recorder = CaptureRecorder(out, sample=sample, **options)
    return ASGIRecorder(app, recorder) if is_asgi else WSGIRecorder(app, recorder)
