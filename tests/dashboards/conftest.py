"""Fixtures of the dashboard tests: an app instrumented with every HLTHZ metric family.

The app is a small Flask shop served by werkzeug on 127.0.0.1, instrumented with
``hlthz.exporter``: requests (by route), a SQLite database through SQLAlchemy (query timing,
queries per request, N+1, pool gauges), a cache (hits and misses) and a job queue.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hlthz.procs import LOOPBACK, free_port


@dataclass
class ShopApp:
    """The running app: ``url`` is its base URL, ``target`` its ``host:port`` for scraping."""

    url: str
    target: str


def _build_app(db_path: Path) -> Any:
    import flask
    from prometheus_client import CollectorRegistry
    from sqlalchemy import create_engine, text

    from hlthz.exporter import CacheMetrics, JobMetrics, instrument, instrument_sqlalchemy

    registry = CollectorRegistry()
    engine = create_engine(f"sqlite:///{db_path}", pool_size=3, max_overflow=1)
    instrument_sqlalchemy(engine, registry=registry, pool="shop")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INT)"))
        for i in range(1, 11):
            conn.execute(text("INSERT INTO products VALUES (:i, :n)"), {"i": i, "n": f"p{i}"})
            conn.execute(text("INSERT INTO reviews VALUES (:i, :i)"), {"i": i})

    cache: dict[int, str] = {}
    cache_metrics = CacheMetrics("products", registry=registry)
    emails = JobMetrics("emails", registry=registry)
    app = flask.Flask("hlthz-dashboards-shop")

    @app.get("/api/products")
    def products() -> Any:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, name FROM products")).all()
        return {"products": [r.name for r in rows]}

    @app.get("/api/products/<int:product_id>")
    def product(product_id: int) -> Any:
        if product_id in cache:
            cache_metrics.hit()
            return {"name": cache[product_id]}
        cache_metrics.miss()
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT name FROM products WHERE id = :i"), {"i": product_id}
            ).first()
        if row is None:
            return {"error": "not found"}, 404
        cache[product_id] = row.name
        return {"name": row.name}

    @app.get("/api/reviews")
    def reviews() -> Any:
        # The N+1 pattern on purpose: one query per product.
        with engine.connect() as conn:
            ids = [r.id for r in conn.execute(text("SELECT id FROM products")).all()]
            counts = [
                conn.execute(
                    text("SELECT count(*) FROM reviews WHERE product_id = :i"), {"i": i}
                ).scalar()
                for i in ids
            ]
        return {"reviews": counts}

    @app.post("/api/orders")
    def orders() -> Any:
        emails.set_depth(1)
        with emails.track("send_receipt"):
            emails.set_depth(0)
        # The payment job fails once and is retried: failure and retry outcomes exist.
        try:
            with emails.track("charge_card"):
                raise RuntimeError("card declined")
        except RuntimeError:
            emails.retry("charge_card")
        return {"ok": True}, 201

    @app.get("/api/broken")
    def broken() -> Any:
        return {"error": "upstream down"}, 503

    return instrument(app, registry=registry)


@pytest.fixture
def shop_app(tmp_path: Path) -> Iterator[ShopApp]:
    """The instrumented shop, served on a free loopback port for the test."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    port = free_port()
    app = _build_app(tmp_path / "shop.sqlite3")
    server = make_server(LOOPBACK, port, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="shop", daemon=True)
    thread.start()
    try:
        yield ShopApp(url=f"http://{LOOPBACK}:{port}", target=f"{LOOPBACK}:{port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)


TRAFFIC = (
    ("GET", "/api/products"),
    ("GET", "/api/products/1"),
    ("GET", "/api/products/2"),
    ("GET", "/api/products/99"),
    ("GET", "/api/reviews"),
    ("POST", "/api/orders"),
    ("GET", "/api/broken"),
)


def send_traffic(base_url: str, rounds: int) -> int:
    """Send ``rounds`` passes over every route (hits, misses, 404, 503, N+1, a job)."""
    sent = 0
    for _ in range(rounds):
        for method, path in TRAFFIC:
            request = urllib.request.Request(
                base_url + path, method=method, data=b"" if method == "POST" else None
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                exc.read()
            sent += 1
    return sent
