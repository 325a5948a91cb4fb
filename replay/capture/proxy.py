"""A recording reverse proxy: ``hlthz replay record --listen H:P --upstream URL --out FILE``.

For apps in any language: clients talk to the proxy, the proxy forwards to the upstream and
records each exchange. Design:

- **uvicorn** parses the client side: a maintained, strict HTTP/1.1 server (keep-alive, chunked
  bodies, ``100 Continue``, timeouts) that we should not rewrite.
- A small asyncio-streams client (:mod:`hlthz.replay.capture.upstream`) talks to the upstream:
  a pool of kept-alive connections, one write per request head, bodies streamed both ways. httpx did
  the same job at about 1 ms of CPU per request, most of the proxy's cost; this does it in a
  tenth of that.
- The proxy is a plain ASGI app (:class:`ProxyApp`) wrapped by the same
  :class:`~hlthz.replay.capture.recorder.ASGIRecorder` as the middleware, so sampling, rules,
  body cap, redaction, the bounded queue and the drop counter behave identically in both.
- Bodies stream both ways: request chunks are forwarded as they arrive (with the client's
  ``Content-Length``, else chunked) and response chunks are relayed as they come, undecoded, so
  ``Content-Encoding`` passes through untouched.
- Upstream failures answer ``502`` (refused, reset, not HTTP) or ``504`` (timeout) with a
  one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from hlthz.errors import ReplayError
from hlthz.net import HOP_BY_HOP, parse_host_port, parse_http_url
from hlthz.replay.capture.middleware import ASGIReceive, ASGIRecorder, ASGIScope, ASGISend
from hlthz.replay.capture.upstream import UpstreamPool, _UpstreamError, _UpstreamTimeout

__all__ = ["ProxyApp", "ProxyStats", "run_proxy"]

_log = logging.getLogger("hlthz.replay.capture.proxy")

# Connection-specific headers are never forwarded; nor is Expect: uvicorn already answered
# "100 Continue" when the body was read.
_HOP_BY_HOP = frozenset(name.encode() for name in (*HOP_BY_HOP, "expect"))


@dataclass
class ProxyStats:
    """Counters of a proxy run (also printed on the progress line)."""

    requests: int = 0
    upstream_errors: int = 0
    started: float = 0.0
    #: Filled in when the proxy stops: records written and requests dropped from the capture,
    #: and request bodies redaction dropped (records marked ``body_dropped``).
    written: int = 0
    dropped: int = 0
    bodies_dropped: int = 0


def _dropped(recorder: ASGIRecorder) -> int:
    return int(
        sum(
            sample.value
            for metric in recorder.recorder.metrics.dropped.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


class ProxyApp:
    """ASGI app forwarding every HTTP request to ``upstream`` (``http://host:port[/prefix]``)."""

    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 100,
        stats: ProxyStats | None = None,
    ) -> None:
        self._prefix = parse_http_url(upstream, what="--upstream").base
        self.upstream = upstream.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.stats = stats or ProxyStats()
        self._pool: UpstreamPool | None = None

    def _get_pool(self) -> UpstreamPool:
        # Created on first use, inside the server's event loop (its semaphore binds to it).
        if self._pool is None:
            self._pool = UpstreamPool(
                self.upstream,
                timeout=self.timeout,
                connect_timeout=self.connect_timeout,
                max_connections=self.max_connections,
            )
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied; uvicorn answers 403
        self.stats.requests += 1
        await self._forward(scope, receive, send)

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _request_headers(self, scope: ASGIScope) -> tuple[list[tuple[bytes, bytes]], int | None]:
        """Headers to forward and the request's Content-Length (None when chunked/absent)."""
        headers: list[tuple[bytes, bytes]] = []
        forwarded_for = b""
        host = b""
        length: int | None = None
        for name, value in scope.get("headers") or ():
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                continue
            if lname == b"host":
                host = value  # the upstream gets its own Host
            elif lname == b"content-length":
                length = int(value)  # uvicorn validated it
            elif lname == b"x-forwarded-for":
                forwarded_for = value + b", "
            else:
                headers.append((name, value))
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", forwarded_for + str(client[0]).encode()))
        if host:
            headers.append((b"x-forwarded-host", host))
        headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        return headers, length

    async def _forward(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        raw_path = scope.get("raw_path") or scope.get("path", "/").encode()
        target = self._prefix + raw_path.decode("latin-1").split("?", 1)[0]
        query = scope.get("query_string") or b""
        if query:
            target += "?" + query.decode("latin-1")
        headers, length = self._request_headers(scope)
        chunked = any(n.lower() == b"transfer-encoding" for n, _ in scope.get("headers") or ())

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionAbortedError("client disconnected while sending the body")
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        has_body = chunked or bool(length)
        try:
            response = await self._get_pool().request(
                scope.get("method", "GET"),
                target,
                headers,
                body() if has_body else None,
                content_length=None if chunked else length,
            )
        except _UpstreamTimeout as exc:
            self.stats.upstream_errors += 1
            await _plain(send, 504, f"upstream {self.upstream} timed out: {exc}\n")
            return
        except (_UpstreamError, ConnectionAbortedError) as exc:
            self.stats.upstream_errors += 1
            await _plain(send, 502, f"upstream {self.upstream} failed: {exc!s:.200}\n")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (n, v) for n, v in response.headers if n.lower() not in _HOP_BY_HOP
                    ],
                }
            )
            try:
                async for chunk in response.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except _UpstreamError as exc:
                # Headers are gone already: all we can do is cut the response short.
                self.stats.upstream_errors += 1
                _log.warning("upstream %s broke mid-response: %s", self.upstream, exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.release()


async def _plain(send: ASGISend, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _progress(stats: ProxyStats, recorder: ASGIRecorder, out: TextIO) -> None:
    """Show requests, rate, written and dropped: one line rewritten every second on a terminal,
    a new line every 10 s in a log file; also right away and when the proxy stops."""
    tty = out.isatty()
    interval, start, end = (1.0, "\r", "   ") if tty else (10.0, "", "\n")
    last_n, last_t = 0, time.monotonic()

    def show() -> None:
        nonlocal last_n, last_t
        now = time.monotonic()
        rps = (stats.requests - last_n) / max(now - last_t, 1e-9)
        last_n, last_t = stats.requests, now
        out.write(
            f"{start}recording: {stats.requests} requests, {rps:7.1f} req/s, "
            f"{recorder.recorder.written} written, {_dropped(recorder)} dropped, "
            f"{stats.upstream_errors} upstream errors{end}"
        )
        out.flush()

    try:
        while True:
            show()
            await asyncio.sleep(interval)
    finally:
        show()
        if tty:
            out.write("\n")


def _make_server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after a graceful stop; a CLI wants a clean exit."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


def run_proxy(
    listen: str,
    upstream: str,
    recorder_app: Callable[[ProxyApp], ASGIRecorder],
    *,
    timeout: float = 30.0,
    connect_timeout: float = 5.0,
    max_connections: int = 100,
    progress: bool = True,
    progress_out: TextIO | None = None,
) -> ProxyStats:
    """Serve the recording proxy until SIGINT/SIGTERM; return its counters.

    ``recorder_app`` wraps the :class:`ProxyApp` (normally ``lambda app: recording(app, out,
    ...)``), so the caller chooses file, sampling and redaction.
    """
    import uvicorn

    host, port = parse_host_port(listen, what="--listen")
    # Bind before anything else so a busy port is a one-line error, not a uvicorn exit.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it Nagle + delayed ACKs add ~40 ms to every keep-alive response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ReplayError(f"--listen {listen}: cannot listen ({exc.strerror or exc})") from None
    stats = ProxyStats(started=time.monotonic())
    try:
        proxy = ProxyApp(
            upstream,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            stats=stats,
        )
        app = recorder_app(proxy)
    except BaseException:
        sock.close()  # a bad --upstream or --out must not leave the port bound
        raise
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_level="warning",
        http="h11",
        loop="asyncio",
        timeout_keep_alive=30,
        # We are the proxy: keep the peer address, append to X-Forwarded-For ourselves.
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    server = _make_server_class()(config)
    out = progress_out or sys.stderr

    async def main() -> None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, server.handle_exit, signum, None)
        task = asyncio.create_task(_progress(stats, app, out)) if progress else None
        try:
            await server.serve(sockets=[sock])
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
        app.close()
    stats.written = app.recorder.written
    stats.dropped = _dropped(app)
    stats.bodies_dropped = app.recorder.bodies_dropped
    return stats
