"""Fixtures for the stack, demo and drill tests: a small instrumented app to scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
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


def live_process_groups() -> dict[int, list[int]]:
    """Every live (non-zombie) process on the machine, by process group."""
    groups: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgid = fields[0], int(fields[2])
        if state not in ("Z", "X"):
            groups.setdefault(pgid, []).append(int(stat.parent.name))
    return groups


def leftover_groups(leaders: Iterable[int]) -> dict[int, list[int]]:
    """The process groups of ``leaders`` (each started in its own session) still alive.

    Checking the group, not just the leader, also catches a server's workers or a replay's
    locust children that outlived the process we started.
    """
    groups = live_process_groups()
    return {pid: groups[pid] for pid in leaders if pid in groups}
