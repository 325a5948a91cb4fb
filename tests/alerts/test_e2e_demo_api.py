"""End to end with the demo API's own fault switches: a real Prometheus scrapes
``hlthz.demo_api`` (SQLite, small seed) and evaluates the generated rules (scaled-down config).
``PUT /admin/faults`` latency and errors fire APIHighLatencyP95 and APIHighErrorRate, pool
starvation fires DBPoolExhausted; ``DELETE /admin/faults`` makes them inactive again."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hlthz.alerts.generator import generate
from hlthz.procs import free_port, http_ok, wait_until
from tests.conftest import PrometheusFactory, prom_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_S = 30
ALERTS = "APIHighLatencyP95|APIHighErrorRate|DBPoolExhausted"


@pytest.fixture
def demo_api(tmp_path: Path) -> Iterator[str]:
    """The demo API (profile ``after``, faults enabled) served by uvicorn in a thread."""
    import uvicorn

    from hlthz.demo_api import Settings, create_app, seed

    data = tmp_path / "data"
    data.mkdir()
    seed(f"sqlite:///{data}/demo.sqlite3", products=400, reviews=2000)
    settings = Settings.for_profile("after", data_dir=data, enable_faults=True)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, registry=CollectorRegistry()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=WAIT_S, what="API")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def traffic(demo_api: str) -> Iterator[None]:
    """Four clients listing products in a loop until the test ends."""
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                url = f"http://{demo_api}/api/products?page=1&per_page=5"
                with urllib.request.urlopen(url, timeout=10):
                    pass
            except urllib.error.HTTPError:
                pass  # the injected 5xx
            except OSError:
                if stop.is_set():
                    return
            stop.wait(0.2)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join(timeout=15)


def _faults(address: str, method: str, body: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(
        f"http://{address}/admin/faults",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _firing(url: str) -> set[str]:
    results = prom_query(url, f'ALERTS{{alertname=~"{ALERTS}", alertstate="firing"}}')
    return {r["metric"]["alertname"] for r in results}


def _any_state(url: str) -> list[dict[str, Any]]:
    return prom_query(url, f'ALERTS{{alertname=~"{ALERTS}"}}')


def test_demo_api_fault_switches_fire_and_resolve_alerts(
    prometheus: PrometheusFactory,
    demo_api: str,
    traffic: None,
    fast_config: Path,
    tmp_path: Path,
) -> None:
    generate(fast_config, tmp_path / "alerts")
    prom = prometheus(
        [demo_api],
        job="hlthz-demo-api",
        rule_files=[str(tmp_path / "alerts/generated/hlthz.rules.yml")],
    )
    wait_until(
        lambda: bool(prom_query(prom.url, "job:http_requests:rate4s >= 0.5")),
        timeout=WAIT_S,
        what="the request rate recording rule",
    )
    assert _any_state(prom.url) == []

    _faults(demo_api, "PUT", {"latency_ms": 300, "error_ratio": 0.5})
    wait_until(
        lambda: {"APIHighLatencyP95", "APIHighErrorRate"} <= _firing(prom.url),
        timeout=WAIT_S,
        what="APIHighLatencyP95 and APIHighErrorRate to fire",
    )
    assert "DBPoolExhausted" not in _firing(prom.url)
    _faults(demo_api, "DELETE")
    wait_until(lambda: _any_state(prom.url) == [], timeout=WAIT_S, what="the alerts to resolve")

    _faults(demo_api, "PUT", {"pool_starvation": True})
    wait_until(
        lambda: "DBPoolExhausted" in _firing(prom.url),
        timeout=WAIT_S,
        what="DBPoolExhausted to fire",
    )
    _faults(demo_api, "DELETE")
    wait_until(
        lambda: "DBPoolExhausted" not in {r["metric"]["alertname"] for r in _any_state(prom.url)},
        timeout=WAIT_S,
        what="DBPoolExhausted to resolve",
    )
