"""A real Prometheus scrapes an instrumented app on loopback; the metrics of docs/metrics.md are
queryable."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from hlthz.exporter import CacheMetrics, JobMetrics, instrument, instrument_sqlalchemy
from hlthz.procs import free_port, wait_until
from tests.conftest import PrometheusFactory, prom_query

DOCUMENTED_METRICS = [  # docs/metrics.md
    "http_request_duration_seconds_bucket",
    "http_requests_in_flight",
    "http_request_database_queries_bucket",
    "database_query_duration_seconds_bucket",
    "database_n_plus_one_total",
    "db_pool_connections_in_use",
    "db_pool_connections_max",
    "db_pool_pending_acquires",
    "db_pool_acquire_timeouts_total",
    "cache_requests_total",
    "cache_errors_total",
    "job_queue_depth",
    "job_duration_seconds_bucket",
    "jobs_total",
    "process_memory_limit_bytes",
    "process_resident_memory_bytes",
]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[str]:
    registry = CollectorRegistry()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    instrument_sqlalchemy(engine, registry=registry, pool="main")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO products VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    cache = CacheMetrics("products", registry=registry)
    jobs = JobMetrics("emails", registry=registry)
    app = flask.Flask("prom")

    @app.get("/api/products/<int:product_id>")
    def product(product_id: int) -> dict[str, str]:
        cache.miss()
        with engine.connect() as conn:
            for _ in range(6):  # an N+1 loop
                conn.execute(sa.text("SELECT name FROM products WHERE id = :i"), {"i": product_id})
        with jobs.track("receipt"):
            jobs.set_depth(0)
        return {"ok": "yes"}

    instrument(app, registry=registry)
    port = free_port()
    server = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.integration
def test_prometheus_scrapes_contract_metrics(
    served_app: str, prometheus: PrometheusFactory
) -> None:
    for product_id in (1, 2, 3, 3):
        with urllib.request.urlopen(
            f"http://{served_app}/api/products/{product_id}", timeout=5
        ) as r:
            assert r.status == 200
    prom = prometheus(targets=[served_app], job="shop")

    def scraped() -> bool:
        return bool(prom_query(prom.url, 'up{job="shop"} == 1')) and bool(
            prom_query(prom.url, "jobs_total")
        )

    wait_until(scraped, timeout=30, what="Prometheus to scrape the app")
    names = {
        row["metric"]["__name__"]
        for row in prom_query(
            prom.url,
            '{job="shop", __name__=~"http_.*|database_.*|db_pool_.*|cache_.*|job.*|process_.*"}',
        )
    }
    missing = [name for name in DOCUMENTED_METRICS if name not in names]
    assert not missing, f"not scraped: {missing}"
    counts = prom_query(
        prom.url,
        'sum by (route) (http_request_duration_seconds_count{job="shop", status_code="200"})',
    )
    assert {row["metric"]["route"]: float(row["value"][1]) for row in counts} == {
        "/api/products/<int:product_id>": 4.0
    }
    n_plus_one = prom_query(prom.url, 'database_n_plus_one_total{job="shop"}')
    assert [float(row["value"][1]) for row in n_plus_one] == [4.0]
