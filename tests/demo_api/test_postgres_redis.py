"""The demo on a real PostgreSQL and Redis (started on loopback by tests/conftest.py).

Each module gets fresh databases on the shared PostgreSQL server. Covers every endpoint in
both profiles, identical data to SQLite, the Redis cache (invalidation, Redis down), the RQ
queue with its worker and retries, and a database that cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from hlthz.demo_api import models, seed
from hlthz.demo_api.cache import RedisBackend, ResponseCache
from hlthz.demo_api.instrumentation import CACHE_NAME, QUEUE_NAME, job_metrics
from hlthz.demo_api.jobs import run_worker
from hlthz.demo_api.seed import SMALL_PRODUCTS, SMALL_REVIEWS
from hlthz.exporter import CacheMetrics
from hlthz.procs import free_port, wait_until
from hlthz.tools.stack import services
from tests.demo_api.conftest import AppFactory, AppHandle
from tests.demo_api.test_cache_faults import assert_update_visible_everywhere

pytestmark = pytest.mark.integration


def _accepts_connections(server_url: str) -> bool:
    with psycopg.connect(server_url, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _create_database(server_url: str) -> str:
    # The fixture waits for the port; the server may still be "starting up" behind it.
    wait_until(lambda: _accepts_connections(server_url), timeout=30, what="PostgreSQL")
    name = f"demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def pg_urls(postgres_url: str) -> dict[str, str]:
    """A freshly seeded database per profile (the index switch changes the schema)."""
    urls = {}
    for profile in ("before", "after"):
        url = _create_database(postgres_url)
        seed(url, products=SMALL_PRODUCTS, reviews=SMALL_REVIEWS)
        urls[profile] = url
    return urls


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """The session's Redis, emptied before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


@pytest.mark.parametrize("profile", ["before", "after"])
def test_every_endpoint_on_postgres(
    make_app: AppFactory, pg_urls: dict[str, str], sqlite_dirs: dict[str, Path], profile: str
) -> None:
    shop = make_app(profile, db_url=pg_urls[profile])
    lite = make_app(profile, sqlite_dirs[profile])
    assert shop.client.get("/health").json()["database"] == "postgresql"
    # The seed is deterministic across back ends: PostgreSQL serves what SQLite serves.
    for url in ("/api/products?per_page=15", "/api/products?category=tablets&page=2&per_page=5",
                "/api/products/42", "/api/categories"):  # fmt: skip
        response = shop.client.get(url)
        assert response.status_code == 200
        assert response.json() == lite.client.get(url).json(), url
    assert shop.client.get("/api/products/999999").status_code == 404
    assert shop.client.get("/api/products?per_page=0").status_code == 422
    etag = shop.client.get("/api/categories").headers["etag"]
    assert shop.client.get("/api/categories", headers={"If-None-Match": etag}).status_code == 304
    order = {"user_id": 5, "items": [{"product_id": 8, "quantity": 3}]}
    created = shop.client.post("/api/orders", json=order)
    assert created.status_code == 201 and created.json()["order"]["id"] > 200
    updated = shop.client.put("/api/products/8", json={"price_cents": 1234})
    assert updated.status_code == 200 and updated.json()["price_cents"] == 1234
    dashboard = shop.client.get("/api/users/5/dashboard")
    assert dashboard.status_code == 200
    assert created.json()["order"]["id"] in [o["id"] for o in dashboard.json()["orders"]["open"]]


def test_postgres_indexes_and_n_plus_one(make_app: AppFactory, pg_urls: dict[str, str]) -> None:
    before = make_app("before", db_url=pg_urls["before"])
    after = make_app("after", db_url=pg_urls["after"])
    before.client.get("/api/products", params={"per_page": 10})
    after.client.get("/api/products", params={"per_page": 10})
    route = "/api/products"
    assert before.value("http_request_database_queries_sum", route=route) == 21
    assert after.value("http_request_database_queries_sum", route=route) == 1
    for shop, expected in ((before, False), (after, True)):
        with shop.shop.db.connect() as conn:
            names = {r[0] for r in conn.exec_driver_sql("SELECT indexname FROM pg_indexes")}
            assert ("ix_orders_user_open" in names) is expected
            if expected:
                # The partial index is usable for the dashboard's open-orders query.
                conn.exec_driver_sql("SET enable_seqscan = off")
                rows = conn.exec_driver_sql(
                    "EXPLAIN SELECT id FROM orders WHERE user_id = 3 AND status <> 'cancelled'"
                ).all()
                assert "ix_orders_user_open" in " ".join(r[0] for r in rows)


def test_redis_cache_invalidation(
    make_app: AppFactory, pg_urls: dict[str, str], redis_db: str
) -> None:
    shop = make_app("after", db_url=pg_urls["after"], cache_url=redis_db)
    assert shop.client.get("/health").json()["cache"] == "redis"
    assert_update_visible_everywhere(shop)
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="hit") >= 3
    assert redis.Redis.from_url(redis_db).dbsize() > 0


def test_redis_load_racing_an_update_is_not_cached(redis_db: str) -> None:
    metrics = CacheMetrics("race", registry=CollectorRegistry())
    cache = ResponseCache(RedisBackend(redis_db), metrics, ttl=60)

    def load_during_update() -> dict[str, int]:
        cache.invalidate(["product:1"])
        return {"price_cents": 100}

    cache.get_or_load("product:1", ["product:1"], load_during_update)
    assert cache.backend.get("product:1") is None
    cache.get_or_load("product:1", ["product:1"], lambda: {"price_cents": 200})
    assert cache.backend.get("product:1") == b'{"price_cents":200}'
    cache.close()


def test_redis_down_degrades_to_the_database(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    shop = make_app("after", sqlite_dirs["after"], cache_url=dead_redis)
    for _ in range(2):
        response = shop.client.get("/api/products/12")
        assert response.status_code == 200 and response.json()["id"] == 12
        assert response.headers["x-cache"] == "error"
    assert shop.client.get("/api/products", params={"per_page": 3}).status_code == 200
    assert shop.value("cache_errors_total", cache=CACHE_NAME) >= 3
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="hit") == 0
    # The job queue is down too: the order is still taken and its work runs in-process.
    response = shop.client.post(
        "/api/orders", json={"user_id": 1, "items": [{"product_id": 2, "quantity": 1}]}
    )
    assert response.status_code == 201
    order_id = response.json()["order"]["id"]
    wait_until(lambda: "email_sent" in order_events(shop, order_id), timeout=10, what="e-mail job")


def order_events(shop: AppHandle, order_id: int) -> set[str]:
    with shop.shop.db.connect() as conn:
        query = sa.select(models.order_events.c.kind).where(
            models.order_events.c.order_id == order_id
        )
        return {row.kind for row in conn.execute(query)}


def test_rq_queue_and_worker_with_retry(
    make_app: AppFactory, pg_urls: dict[str, str], redis_db: str
) -> None:
    shop = make_app("after", db_url=pg_urls["after"], cache_url=redis_db)
    order = {"user_id": 7, "items": [{"product_id": 3, "quantity": 1}]}
    response = shop.client.post("/api/orders", json=order)
    assert response.status_code == 201 and response.json()["side_work"] == "queued"
    order_id = response.json()["order"]["id"]
    # Queued durably in Redis; nothing ran yet (no worker).
    assert shop.value("job_queue_depth", queue=QUEUE_NAME) == 3
    assert order_events(shop, order_id) == set()
    # `hlthz api worker --burst` in-process, with the SMTP server failing once.
    work = shop.shop.work
    work.smtp.fail_next(1)
    metrics = job_metrics(shop.registry)
    run_worker(work, metrics, burst=True)
    assert order_events(shop, order_id) == {
        "email_sent",
        "inventory_reserved",
        "analytics_recorded",
    }
    labels: dict[str, Any] = {"queue": QUEUE_NAME, "job": "send_confirmation_email"}
    assert shop.value("jobs_total", **labels, outcome="retry") == 1
    assert shop.value("jobs_total", **labels, outcome="success") == 1
    assert shop.shop.jobs.depth == 0  # type: ignore[attr-defined]


def test_database_unreachable_is_503_fast(make_app: AppFactory) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    shop = make_app("before", db_url=url)
    done = threading.Event()
    result: dict[str, Any] = {}

    def call() -> None:
        with contextlib.suppress(Exception):
            result["response"] = shop.client.get("/api/products/1")
        done.set()

    threading.Thread(target=call, daemon=True).start()
    # A bound on the wait, not a speed target: a hung worker would never answer.
    assert done.wait(timeout=10), "request hung on an unreachable database"
    response = result["response"]
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "database unavailable" in response.json()["detail"]
    assert shop.client.get("/health").status_code == 503


def test_a_silent_database_host_is_503_from_the_fast_probe(make_app: AppFactory) -> None:
    # A listener whose backlog is full: the kernel drops further SYNs, as a dead host would,
    # and libpq alone would wait its 2 s minimum per connection attempt.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        shop = make_app("before", db_url=f"postgresql://postgres@127.0.0.1:{port}/x")
        response = shop.client.get("/api/products/1")
        assert response.status_code == 503
        # The probe, not libpq, gave up: its message names the configured timeout.
        assert "did not answer within 0.5 s" in response.json()["detail"]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.slow
def test_worker_command_drains_the_queue(
    make_app: AppFactory, sqlite_dirs: dict[str, Path], redis_db: str, tmp_path: Path
) -> None:
    data_dir = sqlite_dirs["after"]
    shop = make_app("after", data_dir, cache_url=redis_db)
    response = shop.client.post(
        "/api/orders", json={"user_id": 9, "items": [{"product_id": 4, "quantity": 2}]}
    )
    order_id = response.json()["order"]["id"]
    assert order_events(shop, order_id) == set()
    argv = [sys.executable, "-m", "hlthz", "api", "worker", "--cache", redis_db,
            "--data-dir", str(data_dir), "--burst"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert order_events(shop, order_id) == {
        "email_sent",
        "inventory_reserved",
        "analytics_recorded",
    }


def _server_processes(postmaster: int) -> list[int]:
    """The postmaster and its children (each backend runs in a session of its own)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


@pytest.mark.slow
def test_a_frozen_database_answers_503_and_recovers(make_app: AppFactory, tmp_path: Path) -> None:
    """SIGSTOP stops every PostgreSQL process: TCP still connects, nothing answers. Requests
    on connections the pool already holds and new ones alike get a 503 instead of hanging, and
    the API serves again once the server runs."""
    with services.start_postgres(tmp_path / "frozen") as server:
        url = _create_database(server.url)
        seed(url, products=SMALL_PRODUCTS, reviews=SMALL_REVIEWS)
        shop = make_app("after", db_url=url)
        assert shop.client.get("/api/products/1").status_code == 200  # the pool holds connections
        frozen = _server_processes(server.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            results: dict[str, Any] = {}

            def call(path: str) -> None:
                with contextlib.suppress(Exception):
                    results[path] = shop.client.get(path)

            threads = [
                threading.Thread(target=call, args=(path,), daemon=True)
                for path in ("/api/products/2", "/api/products?per_page=5", "/health")
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                # A bound on the wait, not a speed target: a hung worker would never answer.
                thread.join(timeout=15)
            assert sorted(results) == ["/api/products/2", "/api/products?per_page=5", "/health"]
            assert {path: r.status_code for path, r in results.items()} == dict.fromkeys(
                results, 503
            )
            watch = shop.shop.db.freeze_watch  # type: ignore[attr-defined]
            assert watch is not None and watch.freezes >= 1
            # A new connection asks the server first and gives up at the probe's timeout.
            assert "did not answer within 0.5 s" in shop.client.get("/api/products/3").text
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        wait_until(
            lambda: shop.client.get("/api/products/4").status_code == 200,
            timeout=30,
            what="the API to serve again after the database resumed",
        )
