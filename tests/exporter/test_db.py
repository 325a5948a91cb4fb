"""Database metrics: query types, per-request counts, N+1 detection, pool gauges, DB-API."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import flask
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.pool import QueuePool

from hlthz.exporter import instrument, instrument_dbapi, instrument_sqlalchemy, query_name
from hlthz.exporter._sql import analyze
from tests.exporter.conftest import call_wsgi, value


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT id, name FROM products WHERE id = ?", "select_products"),
        (
            'SELECT p.id FROM "shop"."Products" AS p JOIN reviews r ON r.pid = p.id',
            "select_products",
        ),
        ("select count(*) from (select 1 from orders) t", "select_subquery"),
        ("INSERT INTO order_items (a, b) VALUES (%(a)s, %(b)s)", "insert_order_items"),
        ("UPDATE products SET stock = stock - 1 WHERE id = 3", "update_products"),
        ("DELETE FROM sessions WHERE expires < now()", "delete_sessions"),
        ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", "select_orders"),
        ("/* hlthz:product_page */ SELECT * FROM products", "product_page"),
        ("SELECT 1", "select"),
        ("BEGIN", "begin"),
        ("frobnicate the database", "other"),
    ],
)
def test_query_type_is_verb_and_main_table(statement: str, expected: str) -> None:
    assert analyze(statement)[0] == expected


def test_shape_strips_literals_and_in_lists() -> None:
    one = analyze("SELECT * FROM books WHERE author_id = 1 AND title = 'a''b' AND id IN (1, 2, 3)")
    two = analyze("SELECT * FROM books WHERE author_id = 22 AND title = 'x' AND id IN (9)")
    assert one[1] == two[1] == "SELECT * FROM books WHERE author_id = ? AND title = ? AND id IN (?)"


@pytest.fixture
def shop(tmp_path: Path, registry: CollectorRegistry) -> tuple[flask.Flask, sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    instrument_sqlalchemy(engine, registry=registry, pool="shop")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql(
            "CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INT, title TEXT)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE reviews (id INTEGER PRIMARY KEY, author_id INT, stars INT)"
        )
        for i in range(1, 7):
            conn.exec_driver_sql(f"INSERT INTO authors VALUES ({i}, 'author {i}')")
            conn.exec_driver_sql(f"INSERT INTO books VALUES ({i}, {i}, 'book {i}')")
            conn.exec_driver_sql(f"INSERT INTO reviews VALUES ({i}, {i}, {i % 5})")

    app = flask.Flask("shop")

    @app.get("/authors")
    def n_plus_one() -> dict[str, int]:
        # 1 + 2N: the list, then books and reviews per author (an ORM's lazy loading).
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM authors"))]
            for author_id in ids:
                conn.execute(
                    sa.text("SELECT title FROM books WHERE author_id = :a"), {"a": author_id}
                )
                conn.execute(sa.text(f"SELECT stars FROM reviews WHERE author_id = {author_id}"))
        return {"authors": len(ids)}

    @app.get("/authors-joined")
    def joined() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT a.id, b.title, r.stars FROM authors a "
                    "JOIN books b ON b.author_id = a.id JOIN reviews r ON r.author_id = a.id"
                )
            ).all()
        return {"authors": len(rows)}

    @app.get("/named")
    def named() -> dict[str, int]:
        with engine.connect() as conn, query_name("author_directory"):
            rows = conn.execute(sa.text("SELECT id FROM authors")).all()
        return {"authors": len(rows)}

    @app.get("/books-twice")
    def two_shapes() -> dict[str, int]:
        # Two N+1 shapes of one query_type (select_books) in one request.
        with engine.connect() as conn:
            for i in range(1, 7):
                conn.execute(sa.text("SELECT title FROM books WHERE author_id = :a"), {"a": i})
                conn.execute(sa.text("SELECT author_id FROM books WHERE id = :i"), {"i": i})
        return {"books": 6}

    instrument(app, registry=registry)
    return app, engine


def test_n_plus_one_flagged_and_join_not(
    shop: tuple[flask.Flask, sa.Engine],
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = shop
    with caplog.at_level(logging.WARNING, logger="hlthz.exporter"):
        assert call_wsgi(app, "/authors")[0] == "200 OK"
        assert call_wsgi(app, "/authors")[0] == "200 OK"
        assert call_wsgi(app, "/authors-joined")[0] == "200 OK"

    n1 = "database_n_plus_one_total"
    assert value(registry, n1, route="/authors", query_type="select_books") == 2
    assert value(registry, n1, route="/authors", query_type="select_reviews") == 2
    assert value(registry, n1, route="/authors-joined", query_type="select_authors") == 0
    assert value(registry, "http_request_database_queries_sum", route="/authors") == 2 * (1 + 2 * 6)
    assert value(registry, "http_request_database_queries_sum", route="/authors-joined") == 1
    # le=1 holds the JOIN request; the N+1 requests are above 10.
    assert (
        value(registry, "http_request_database_queries_bucket", route="/authors-joined", le="1.0")
        == 1
    )
    assert value(registry, "http_request_database_queries_bucket", route="/authors", le="10.0") == 0
    assert value(registry, "database_query_duration_seconds_count", query_type="select_books") == 12
    # One warning per route and statement shape, not one per request.
    warnings = [r.getMessage() for r in caplog.records if "N+1" in r.getMessage()]
    assert len(warnings) == 2
    assert any(
        "/authors" in w and "SELECT stars FROM reviews WHERE author_id = ?" in w for w in warnings
    )


def test_n_plus_one_counts_requests_not_shapes(
    shop: tuple[flask.Flask, sa.Engine],
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = shop
    with caplog.at_level(logging.WARNING, logger="hlthz.exporter"):
        assert call_wsgi(app, "/books-twice")[0] == "200 OK"
    n1 = "database_n_plus_one_total"
    assert value(registry, n1, route="/books-twice", query_type="select_books") == 1
    # Both shapes are still named in a warning each.
    assert len([r for r in caplog.records if "N+1" in r.getMessage()]) == 2


def test_query_name_overrides_the_derived_type(
    shop: tuple[flask.Flask, sa.Engine], registry: CollectorRegistry
) -> None:
    app, _ = shop
    call_wsgi(app, "/named")
    assert (
        value(registry, "database_query_duration_seconds_count", query_type="author_directory") == 1
    )
    assert value(registry, "http_request_database_queries_count", route="/named") == 1


def test_pool_gauges_and_acquire_timeouts(tmp_path: Path, registry: CollectorRegistry) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'pool.sqlite3'}",
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=1,
        pool_timeout=0.2,
    )
    instrument_sqlalchemy(engine, registry=registry, pool="main")
    assert value(registry, "db_pool_connections_max", pool="main") == 2
    first = engine.connect()
    second = engine.connect()
    assert value(registry, "db_pool_connections_in_use", pool="main") == 2

    errors: list[BaseException] = []

    def third() -> None:
        try:
            engine.connect()
        except sa.exc.TimeoutError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=third)
    waiter.start()
    waiter.join(timeout=10)
    assert len(errors) == 1
    assert value(registry, "db_pool_acquire_timeouts_total", pool="main") == 1
    assert value(registry, "db_pool_pending_acquires", pool="main") == 0
    first.close()
    second.close()
    assert value(registry, "db_pool_connections_in_use", pool="main") == 0
    engine.dispose()


def test_pending_acquires_counts_only_callers_that_wait(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'pending.sqlite3'}",
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=30,
    )
    instrument_sqlalchemy(engine, registry=registry, pool="p")
    # A free connection is handed out without waiting: nobody pending afterwards or during.
    held = engine.connect()
    assert value(registry, "db_pool_pending_acquires", pool="p") == 0

    got: list[sa.Connection] = []
    waiter = threading.Thread(target=lambda: got.append(engine.connect()))
    waiter.start()
    deadline = time.monotonic() + 10
    while value(registry, "db_pool_pending_acquires", pool="p") != 1:
        assert time.monotonic() < deadline, "the waiting caller was never counted"
        time.sleep(0.01)
    held.close()  # hands the connection to the waiter
    waiter.join(timeout=10)
    assert len(got) == 1
    assert value(registry, "db_pool_pending_acquires", pool="p") == 0
    got[0].close()
    engine.dispose()


def test_dbapi_wrapper_sqlite(registry: CollectorRegistry) -> None:
    conn = instrument_dbapi(sqlite3.connect(":memory:"), registry=registry)
    conn.execute("CREATE TABLE t (id INTEGER)")
    cur = conn.cursor()
    cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    rows = list(cur.execute("SELECT id FROM t ORDER BY id"))
    assert rows == [(1,), (2,), (3,)]
    assert value(registry, "database_query_duration_seconds_count", query_type="insert_t") == 1
    assert value(registry, "database_query_duration_seconds_count", query_type="select_t") == 1
    assert value(registry, "database_query_duration_seconds_count", query_type="create") == 1


@pytest.mark.integration
def test_dbapi_wrapper_psycopg(postgres_url: str, registry: CollectorRegistry) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as raw:
        conn = instrument_dbapi(raw, registry=registry)
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS one /* hlthz:ping */")
            assert cur.fetchone() == (1,)
        conn.execute("SELECT count(*) FROM pg_class")
    assert value(registry, "database_query_duration_seconds_count", query_type="ping") == 1
    assert (
        value(registry, "database_query_duration_seconds_count", query_type="select_pg_class") == 1
    )


@pytest.mark.integration
def test_async_engine_and_query_counting(postgres_url: str, registry: CollectorRegistry) -> None:
    import asyncio

    import httpx
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    instrument_sqlalchemy(engine, registry=registry, pool="async")
    app = FastAPI()

    @app.get("/tables/{schema}")
    async def tables(schema: str) -> dict[str, int]:
        async with engine.connect() as conn:
            for _ in range(5):
                await conn.execute(
                    sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                )
        return {"ok": 1}

    instrument(app, registry=registry)

    async def main() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            status = (await client.get("/tables/public")).status_code
        await engine.dispose()
        return status

    assert asyncio.run(main()) == 200
    assert (
        value(registry, "database_query_duration_seconds_count", query_type="select_pg_tables") == 5
    )
    assert value(registry, "http_request_database_queries_sum", route="/tables/{schema}") >= 5
    assert (
        value(
            registry,
            "database_n_plus_one_total",
            route="/tables/{schema}",
            query_type="select_pg_tables",
        )
        == 1
    )
    assert value(registry, "db_pool_connections_in_use", pool="async") == 0
