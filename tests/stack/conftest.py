"""Fixtures for the stack and drill tests: a small instrumented app to scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadedServer:
    """A WSGI app served from a thread on loopback; ``.url`` is its base URL."""

    def __init__(self) -> None:
        registry = CollectorRegistry()
        Counter("demo_up_checks", "Scrapes of the test target.", registry=registry).inc()
        self.server: WSGIServer = make_server(
            "127.0.0.1", 0, make_wsgi_app(registry), handler_class=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def metrics_target() -> Iterator[_ThreadedServer]:
    """A real HTTP server exposing Prometheus metrics at /metrics (any path, in fact)."""
    target = _ThreadedServer()
    yield target
    target.stop()
