"""The metrics tell the story: N+1 before, one query after, cache warm-up, queued side work."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from hlthz.demo_api import models
from hlthz.demo_api.instrumentation import CACHE_NAME, QUEUE_NAME
from tests.demo_api.conftest import AppFactory, AppHandle

LISTING = "/api/products"


def queries_of(shop: AppHandle, route: str) -> tuple[float, float]:
    """(requests, queries) observed for ``route``."""
    count = shop.value("http_request_database_queries_count", route=route)
    total = shop.value("http_request_database_queries_sum", route=route)
    return count, total


def test_before_listing_is_one_plus_two_n_and_trips_n_plus_one(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("before", sqlite_dirs["before"])
    count0, total0 = queries_of(shop, LISTING)
    per_page = 12
    assert shop.client.get(LISTING, params={"per_page": per_page}).status_code == 200
    count, total = queries_of(shop, LISTING)
    assert (count - count0, total - total0) == (1, 1 + 2 * per_page)
    for query_type in ("product_reviews", "product_inventory"):
        assert shop.value("database_n_plus_one_total", route=LISTING, query_type=query_type) == 1


def test_after_listing_is_one_query(make_app: AppFactory, sqlite_dirs: dict[str, Path]) -> None:
    shop = make_app("after", sqlite_dirs["after"], opts=["cache=off"])
    for page in (1, 2, 3):
        assert shop.client.get(LISTING, params={"per_page": 20, "page": page}).status_code == 200
    assert queries_of(shop, LISTING) == (3, 3)
    assert shop.value("database_n_plus_one_total", route=LISTING, query_type="product_reviews") == 0


def test_cache_hit_share_rises_after_warm_up(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"])
    urls = [f"/api/products/{i}" for i in range(1, 11)] + [f"{LISTING}?page={p}" for p in (1, 2)]

    def share() -> float:
        hits = shop.value("cache_requests_total", cache=CACHE_NAME, result="hit")
        misses = shop.value("cache_requests_total", cache=CACHE_NAME, result="miss")
        return hits / (hits + misses)

    for url in urls:
        response = shop.client.get(url)
        assert response.status_code == 200 and response.headers["x-cache"] == "miss"
    cold = share()
    for _ in range(3):
        for url in urls:
            assert shop.client.get(url).status_code == 200
    assert cold == 0.0
    assert share() == 0.75  # 3 warm rounds out of 4, every warm look-up a hit
    assert shop.client.get(urls[0]).headers["x-cache"] == "hit"
    _, queries = queries_of(shop, "/api/products/{product_id}")
    assert queries == 10  # only the cold round reached the database


def events(shop: AppHandle, order_id: int) -> set[str]:
    with shop.shop.db.connect() as conn:
        rows = conn.execute(
            sa.select(models.order_events.c.kind).where(models.order_events.c.order_id == order_id)
        )
        return {row.kind for row in rows}


ORDER = {"user_id": 2, "items": [{"product_id": 9, "quantity": 1}]}


def test_before_order_waits_for_the_email(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("before", sqlite_dirs["before"])
    response = shop.client.post("/api/orders", json=ORDER)
    assert response.status_code == 201 and response.json()["side_work"] == "inline"
    # When the response arrives the e-mail is already sent: the customer waited for it.
    order_id = response.json()["order"]["id"]
    assert events(shop, order_id) == {"email_sent", "inventory_reserved", "analytics_recorded"}
    assert shop.shop.work.smtp.sent[-1][1] == f"Your order #{order_id}"


def test_after_order_does_not_wait_for_the_email(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"])
    jobs = shop.shop.jobs
    jobs.pause()
    response = shop.client.post("/api/orders", json=ORDER)
    assert response.status_code == 201 and response.json()["side_work"] == "queued"
    order_id = response.json()["order"]["id"]
    # The order is answered while its three jobs still wait in the queue.
    assert events(shop, order_id) == set()
    assert shop.value("job_queue_depth", queue=QUEUE_NAME) == 3
    jobs.resume()
    assert jobs.join(timeout=10)
    assert events(shop, order_id) == {"email_sent", "inventory_reserved", "analytics_recorded"}
    assert shop.value("job_queue_depth", queue=QUEUE_NAME) == 0
    ok = shop.value(
        "jobs_total", queue=QUEUE_NAME, job="send_confirmation_email", outcome="success"
    )
    assert ok == 1
    assert (
        shop.value("job_duration_seconds_count", queue=QUEUE_NAME, job="send_confirmation_email")
        == 1
    )


def test_failed_job_is_retried_and_counted(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"])
    jobs = shop.shop.jobs
    shop.shop.work.smtp.fail_next(2)
    response = shop.client.post("/api/orders", json=ORDER)
    assert jobs.join(timeout=10)
    labels = {"queue": QUEUE_NAME, "job": "send_confirmation_email"}
    assert shop.value("jobs_total", **labels, outcome="retry") == 2
    assert shop.value("jobs_total", **labels, outcome="success") == 1
    assert "email_sent" in events(shop, response.json()["order"]["id"])


def test_job_failing_every_attempt_is_kept_not_dropped(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"], job_retries=2)
    jobs = shop.shop.jobs
    shop.shop.work.smtp.fail_next(100)
    order_id = shop.client.post("/api/orders", json=ORDER).json()["order"]["id"]
    assert jobs.join(timeout=10)
    labels = {"queue": QUEUE_NAME, "job": "send_confirmation_email"}
    assert shop.value("jobs_total", **labels, outcome="retry") == 2
    assert shop.value("jobs_total", **labels, outcome="failure") == 1
    assert [(task, oid) for task, oid, _ in jobs.dead] == [("send_confirmation_email", order_id)]
    assert "email_sent" not in events(shop, order_id)


def test_pool_gauges(make_app: AppFactory, sqlite_dirs: dict[str, Path]) -> None:
    before = make_app("before", sqlite_dirs["before"])
    after = make_app("after", sqlite_dirs["after"])
    assert before.client.get("/health").status_code == 200
    assert after.client.get("/health").status_code == 200
    assert before.value("db_pool_connections_max", pool="demo") == 10
    assert after.value("db_pool_connections_max", pool="demo") == 50


def test_simulated_smtp_keeps_a_bounded_outbox() -> None:
    from hlthz.demo_api.tasks import SimulatedSmtp

    smtp = SimulatedSmtp(delay=0.0)
    for n in range(1500):
        smtp.send("a@example.test", f"Your order #{n}")
    # A long-running drill must not keep every message it ever sent.
    assert len(smtp.sent) == 1000 and smtp.sent[-1][1] == "Your order #1499"
