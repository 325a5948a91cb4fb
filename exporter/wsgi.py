"""Pure WSGI middleware: request duration to the last byte, in-flight requests, queries.

One :class:`_Call` object per request is the wrapped ``start_response``, the returned iterable
and the bookkeeping record at once, so the hot path allocates one object and sets the request
contextvar once. The duration is observed when the server calls ``close()`` on the response,
i.e. after the last byte (streaming responses included), as PEP 3333 requires servers to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import Any

from hlthz.exporter._context import RequestState, current_request
from hlthz.exporter._core import STATUS_LABELS, Recorder
from hlthz.exporter._metrics import METHODS, OTHER_METHOD

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_WSGI_STATUS: dict[str, str] = {label: label for label in STATUS_LABELS.values()}


#: Given the request state after the app ran, the route template (or ``None`` when unknown).
RouteOf = Callable[[RequestState], "str | None"]


class WSGIMiddleware:
    """Measures every request of ``app`` except ``recorder.skip`` paths; serves ``/metrics``.

    ``route_of(state)`` reads the template from what a framework hook left in the request
    state (Flask's request context); when it returns ``None``, the recorder's fallback
    (``_unmatched`` or the normalizer) is used.
    """

    def __init__(self, app: WSGIApp, recorder: Recorder, route_of: RouteOf | None = None) -> None:
        self.app = app
        self.recorder = recorder
        self.route_of = route_of
        self._inner = _serving_metrics(app, recorder) if recorder.measure_metrics else app
        # PATH_INFO as a PEP 3333 server passes it (latin-1 text of the URL's bytes): the
        # excluded paths are compared in that form, so no request pays for decoding.
        self._skip = frozenset(_as_wsgi(path) for path in recorder.skip)
        self._metrics_path = recorder.metrics_path
        self._in_flight = recorder.in_flight
        self._threshold = recorder.threshold

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in self._skip:
            if wsgi_path(path) == self._metrics_path and self.recorder.exposition is not None:
                return self.recorder.exposition.wsgi(environ, start_response)
            return self.app(environ, start_response)
        try:
            method = METHODS.get(environ.get("REQUEST_METHOD", ""), OTHER_METHOD)
            call = _Call(self, method, path, start_response)
        except Exception:
            self.recorder.internal_errors.inc()
            return self.app(environ, start_response)
        try:
            result = self._inner(environ, call)
        except BaseException:
            call.status = "500"
            call.finish()
            raise
        call.result = result
        return call


def _as_wsgi(path: str) -> str:
    return path.encode("utf-8").decode("latin-1")


def wsgi_path(path_info: str) -> str:
    """The request path a WSGI ``PATH_INFO`` stands for, as text.

    PEP 3333 servers pass the URL's bytes (percent-decoded) as a latin-1 string, so
    ``/café`` arrives as ``/cafÃ©``. The bytes are decoded again as UTF-8; bytes that are not
    valid UTF-8 are shown percent-encoded (``/caf%E9``), as the client most likely sent them.
    """
    if path_info.isascii():
        return path_info
    try:
        raw = path_info.encode("latin-1")
    except UnicodeEncodeError:
        return path_info  # a server that already decoded it
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(byte) if byte < 0x80 else f"%{byte:02X}" for byte in raw)


def _serving_metrics(app: WSGIApp, recorder: Recorder) -> WSGIApp:
    """``app``, except that the metrics path is answered (and measured) here."""
    path = recorder.metrics_path
    exposition = recorder.exposition
    assert path is not None and exposition is not None

    raw_path = _as_wsgi(path)

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == raw_path:
            state = current_request.get()
            if state is not None:
                state.route = path
            return exposition.wsgi(environ, start_response)
        return app(environ, start_response)

    return dispatch


class _Call(RequestState):
    """One request: its state (what the database hooks count into), the ``start_response``
    given to the app and the iterable given back, in one object allocated per request."""

    __slots__ = (
        "done",
        "method",
        "middleware",
        "path",
        "result",
        "start",
        "start_response",
        "status",
        "token",
    )

    def __init__(
        self, middleware: WSGIMiddleware, method: str, path: str, start_response: Callable[..., Any]
    ) -> None:
        self.route = None
        self.source = None
        self.queries = 0
        self.query_seconds = 0.0
        self.threshold = middleware._threshold
        self.shapes = None
        self.flagged = None
        self.response_bytes = 0
        self.upstream_calls = 0
        self.upstream_seconds = 0.0
        self.middleware = middleware
        self.method = method
        self.path = path
        self.start_response = start_response
        self.status = "500"
        self.result: Iterable[bytes] = ()
        self.done = False
        middleware._in_flight[method](1)
        self.token = current_request.set(self)
        self.start = perf_counter()

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = _WSGI_STATUS.get(status[:3], "_OTHER")
        return self.start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.result:
                self.response_bytes += len(chunk)
                yield chunk
        except BaseException:
            # The body failed after the headers went out: the client got a broken response.
            self.status = "500"
            raise

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        duration = perf_counter() - self.start
        middleware = self.middleware
        recorder = middleware.recorder
        try:
            try:
                current_request.reset(self.token)
            except ValueError:
                # close() ran in another context than the call (a server thread hand-off).
                current_request.set(None)
            middleware._in_flight[self.method](-1)
            route = self.route
            if route is None and middleware.route_of is not None:
                route = middleware.route_of(self)
            if route is None:
                route = recorder.fallback_route(wsgi_path(self.path))
        except Exception:
            recorder.internal_errors.inc()
            return
        recorder.finish(self.method, route, self.status, duration, self)
