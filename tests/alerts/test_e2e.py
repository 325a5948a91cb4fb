"""End to end: a real Prometheus scrapes a Flask app instrumented by hlthz.exporter and
evaluates the generated rules (scaled-down config). Injected latency and errors make
APIHighLatencyP95 and APIHighErrorRate fire; removing them makes the alerts go inactive."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from hlthz.alerts.generator import generate
from hlthz.exporter import instrument
from hlthz.procs import wait_until
from tests.conftest import PrometheusFactory, prom_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Every wait in this test is bounded by this many seconds.
WAIT_S = 30


class _Faults:
    """The test app's own switch: extra latency and a share of 5xx answers."""

    def __init__(self) -> None:
        self.latency_s = 0.0
        self.fail_every = 0  # 0: never; 2: every other request
        self._count = 0
        self._lock = threading.Lock()

    def failing(self) -> bool:
        with self._lock:
            self._count += 1
            return bool(self.fail_every) and self._count % self.fail_every == 0


def _app(faults: _Faults, registry: CollectorRegistry) -> Flask:
    app = Flask("alerts-e2e")

    @app.get("/api/items/<int:item_id>")
    def item(item_id: int) -> tuple[dict[str, int], int]:
        if faults.latency_s:
            time.sleep(faults.latency_s)
        return {"id": item_id}, 500 if faults.failing() else 200

    instrument(app, registry=registry)
    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[tuple[str, _Faults]]:
    faults = _Faults()
    server = make_server(
        "127.0.0.1",
        0,
        _app(faults, CollectorRegistry()),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}", faults
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def traffic(app_server: tuple[str, _Faults]) -> Iterator[None]:
    """Four clients calling the app in a loop until the test ends (about 20 requests/s)."""
    address, _ = app_server
    stop = threading.Event()

    def client(n: int) -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://{address}/api/items/{n}", timeout=5):
                    pass
            except urllib.error.HTTPError:
                pass  # the injected 5xx
            except OSError:
                if stop.is_set():
                    return
            stop.wait(0.2)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def _states(url: str) -> dict[tuple[str, str], str]:
    """(alertname, severity) -> pending/firing, for the alerts this test is about."""
    results = prom_query(url, 'ALERTS{alertname=~"APIHighLatencyP95|APIHighErrorRate"}')
    return {
        (r["metric"]["alertname"], r["metric"]["severity"]): r["metric"]["alertstate"]
        for r in results
    }


def test_latency_and_errors_fire_then_resolve(
    prometheus: PrometheusFactory,
    app_server: tuple[str, _Faults],
    traffic: None,
    fast_config: Path,
    tmp_path: Path,
) -> None:
    address, faults = app_server
    generate(fast_config, tmp_path / "alerts")
    prom = prometheus(
        [address], job="api", rule_files=[str(tmp_path / "alerts/generated/hlthz.rules.yml")]
    )
    # Healthy traffic first: the recording rules see the job, nothing is pending.
    wait_until(
        lambda: bool(prom_query(prom.url, "job:http_requests:rate4s >= 0.5")),
        timeout=WAIT_S,
        what="the request rate recording rule",
    )
    assert _states(prom.url) == {}

    # 300 ms per request: P95 between the 0.25 and 0.5 buckets, above the critical 0.25 s.
    # Every other request answers 500: a 50 % error ratio, above 20 %.
    faults.latency_s, faults.fail_every = 0.3, 2
    wait_until(
        lambda: (
            _states(prom.url).get(("APIHighLatencyP95", "critical")) == "firing"
            and _states(prom.url).get(("APIHighErrorRate", "critical")) == "firing"
        ),
        timeout=WAIT_S,
        what="APIHighLatencyP95 and APIHighErrorRate to fire",
    )
    p95 = prom_query(prom.url, 'job:http_request_duration_seconds:p95_rate4s{job="api"}')
    assert 0.25 < float(p95[0]["value"][1]) <= 0.5
    # The warning tier fires too (0.1 s for 3 s): the critical would inhibit it in Alertmanager.
    wait_until(
        lambda: _states(prom.url).get(("APIHighLatencyP95", "warning")) == "firing",
        timeout=WAIT_S,
        what="the warning tier of APIHighLatencyP95",
    )

    faults.latency_s, faults.fail_every = 0.0, 0
    wait_until(
        lambda: _states(prom.url) == {},
        timeout=WAIT_S,
        what="APIHighLatencyP95 and APIHighErrorRate to go inactive",
    )
    rules = prom_query(prom.url, 'count(ALERTS{alertname="APIHighErrorRate"})')
    assert rules == []
