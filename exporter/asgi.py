"""Pure ASGI middleware (never Starlette's ``BaseHTTPMiddleware``, which buffers and re-tasks).

The duration ends at the ``http.response.body`` message without ``more_body``: the last byte
of a streaming response is timed, and background tasks that run after the response do not
inflate it. An exception before the response started is recorded as a 500 and re-raised as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from hlthz.exporter._context import RequestState, current_request
from hlthz.exporter._core import STATUS_LABELS, Recorder
from hlthz.exporter._metrics import METHODS, OTHER_METHOD

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Given ``scope`` after the app ran, the route template (or ``None`` when unknown).
RouteOf = Callable[[Scope], "str | None"]


class ASGIMiddleware:
    """Measures every HTTP request of ``app`` except ``recorder.skip`` paths; serves ``/metrics``.

    ``route_of(scope)`` reads the template the framework left in the scope (Starlette/FastAPI);
    when it returns ``None`` the recorder's fallback (``_unmatched`` or the normalizer) is used.
    """

    def __init__(self, app: ASGIApp, recorder: Recorder, route_of: RouteOf | None = None) -> None:
        self.app = app
        self.recorder = recorder
        self.route_of = route_of
        self._inner = _serving_metrics(app, recorder) if recorder.measure_metrics else app
        self._skip = recorder.skip
        self._metrics_path = recorder.metrics_path
        self._in_flight = recorder.in_flight
        self._threshold = recorder.threshold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self._skip:
            if path == self._metrics_path and self.recorder.exposition is not None:
                await self.recorder.exposition.asgi(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return

        recorder = self.recorder
        try:
            method = METHODS.get(scope.get("method", ""), OTHER_METHOD)
            gauge = self._in_flight[method]
            gauge(1)
            state = RequestState(self._threshold)
            token = current_request.set(state)
        except Exception:
            recorder.internal_errors.inc()
            await self.app(scope, receive, send)
            return

        status = "500"
        end = 0.0

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status, end
            kind = message["type"]
            if kind == "http.response.start":
                status = STATUS_LABELS.get(message.get("status", 0), "_OTHER")
            elif kind == "http.response.body":
                state.response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    end = perf_counter()
            await send(message)

        start = perf_counter()
        try:
            await self._inner(scope, receive, send_wrapper)
        except BaseException:
            if not end:
                status = "500"
            raise
        finally:
            duration = (end or perf_counter()) - start
            try:
                current_request.reset(token)
            except ValueError:
                current_request.set(None)
            try:
                gauge(-1)
                route = state.route
                if route is None and self.route_of is not None:
                    route = self.route_of(scope)
                if route is None:
                    route = recorder.fallback_route(path)
            except Exception:
                recorder.internal_errors.inc()
            else:
                recorder.finish(method, route, status, duration, state)


def _serving_metrics(app: ASGIApp, recorder: Recorder) -> ASGIApp:
    """``app``, except that the metrics path is answered (and measured) here."""
    path = recorder.metrics_path
    exposition = recorder.exposition
    assert path is not None and exposition is not None

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") == path:
            state = current_request.get()
            if state is not None:
                state.route = path
            await exposition.asgi(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
