"""Cache invalidation, the fault switches, and the index switch (checked with EXPLAIN) on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from hlthz.demo_api.cache import MemoryBackend, ResponseCache
from hlthz.demo_api.instrumentation import CACHE_NAME, POOL_NAME
from hlthz.exporter import CacheMetrics
from tests.demo_api.conftest import AppFactory, AppHandle

PRODUCT = 21


def all_views_of(shop: AppHandle, product_id: int) -> list[dict[str, object]]:
    """Every document the API serves that shows ``product_id`` (detail, its pages, featured)."""
    detail = shop.client.get(f"/api/products/{product_id}").json()
    docs: list[dict[str, object]] = [detail]
    for params in ({"category": detail["category"], "per_page": 100}, {"per_page": 100}):
        items = shop.client.get("/api/products", params=params).json()["items"]
        docs += [item for item in items if item["id"] == product_id]
    return docs


def assert_update_visible_everywhere(shop: AppHandle) -> None:
    views = all_views_of(shop, PRODUCT)
    assert len(views) == 3
    old_price = views[0]["price_cents"]
    all_views_of(shop, PRODUCT)  # every view is now cached
    new_price = int(str(old_price)) + 1
    assert (
        shop.client.put(f"/api/products/{PRODUCT}", json={"price_cents": new_price}).status_code
        == 200
    )
    assert [v["price_cents"] for v in all_views_of(shop, PRODUCT)] == [new_price] * 3


def test_update_invalidates_every_cached_view(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"])
    assert_update_visible_everywhere(shop)
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="hit") >= 3


def test_full_responses_cached_invalidate_related(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    # Cache on with full documents: a detail embeds related products of its category.
    shop = make_app("after", sqlite_dirs["after"], opts=["lean_responses=off"])
    detail = shop.client.get("/api/products/30").json()
    related = detail["related"][0]
    shop.client.get("/api/products/30")
    assert (
        shop.client.put(f"/api/products/{related['id']}", json={"name": "Fresh name"}).status_code
        == 200
    )
    again = shop.client.get("/api/products/30").json()
    assert next(r for r in again["related"] if r["id"] == related["id"])["name"] == "Fresh name"


def test_faults_refused_without_the_flag(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("after", sqlite_dirs["after"])
    assert shop.client.get("/admin/faults").status_code == 404
    assert shop.client.put("/admin/faults", json={"error_ratio": 1}).status_code == 404
    assert shop.client.delete("/admin/faults").status_code == 404


def test_error_ratio_and_latency_faults(make_app: AppFactory, sqlite_dirs: dict[str, Path]) -> None:
    shop = make_app("after", sqlite_dirs["after"], enable_faults=True)
    assert shop.client.get("/admin/faults").json() == {
        "latency_ms": 0, "error_ratio": 0.0, "pool_starvation": False, "cache_bypass": False,
    }  # fmt: skip
    state = shop.client.put("/admin/faults", json={"error_ratio": 1.0, "latency_ms": 5}).json()
    assert state["error_ratio"] == 1.0 and state["latency_ms"] == 5
    assert shop.client.get("/api/products/1").status_code == 500
    # Injected errors keep their route label, and operations endpoints are spared.
    labels = {"method": "GET", "route": "/api/products/{product_id}", "status_code": "500"}
    assert shop.value("http_request_duration_seconds_count", **labels) == 1
    assert shop.client.get("/health").status_code == 200
    # Fields merge: changing latency leaves the error ratio on.
    assert shop.client.put("/admin/faults", json={"latency_ms": 0}).json()["error_ratio"] == 1.0
    assert shop.client.delete("/admin/faults").json()["error_ratio"] == 0.0
    assert shop.client.get("/api/products/1").status_code == 200
    assert shop.client.put("/admin/faults", json={"error_ratio": 2}).status_code == 422
    assert shop.client.put("/admin/faults", json={"nonsense": 1}).status_code == 422
    assert "/admin/faults" in shop.client.get("/openapi.json").json()["paths"]


def test_cache_bypass_fault(make_app: AppFactory, sqlite_dirs: dict[str, Path]) -> None:
    shop = make_app("after", sqlite_dirs["after"], enable_faults=True)
    shop.client.get("/api/products/3")
    shop.client.put("/admin/faults", json={"cache_bypass": True})
    for _ in range(3):
        shop.client.get("/api/products/3")
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="hit") == 0
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="miss") == 4
    shop.client.delete("/admin/faults")
    shop.client.get("/api/products/3")
    assert shop.value("cache_requests_total", cache=CACHE_NAME, result="hit") == 1


def test_pool_starvation_gives_503_and_counts_timeouts(
    make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> None:
    shop = make_app("before", sqlite_dirs["before"], enable_faults=True, pool_timeout=0.1)
    shop.client.put("/admin/faults", json={"pool_starvation": True})
    assert shop.value("db_pool_connections_in_use", pool=POOL_NAME) == 10
    response = shop.client.get("/api/products/1")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "pool" in response.json()["detail"]
    assert shop.value("db_pool_acquire_timeouts_total", pool=POOL_NAME) >= 1
    shop.client.put("/admin/faults", json={"pool_starvation": False})
    assert shop.client.get("/api/products/1").status_code == 200
    assert shop.value("db_pool_connections_in_use", pool=POOL_NAME) == 0


def plan(shop: AppHandle, sql: str) -> str:
    with shop.shop.db.connect() as conn:
        return " | ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))


@pytest.mark.parametrize("profile", ["before", "after"])
def test_index_switch_changes_the_plans(
    make_app: AppFactory, sqlite_dirs: dict[str, Path], profile: str
) -> None:
    shop = make_app(profile, sqlite_dirs[profile])
    reviews = plan(shop, "SELECT * FROM reviews WHERE product_id = 5")
    listing = plan(
        shop, "SELECT id FROM products WHERE category_id = 2 ORDER BY created_at DESC LIMIT 20"
    )
    orders = plan(
        shop,
        "SELECT id FROM orders WHERE user_id = 3 AND status <> 'cancelled' ORDER BY created_at",
    )
    if profile == "after":
        assert reviews.startswith("SEARCH reviews") and "ix_reviews_product_rating" in reviews
        assert listing.startswith("SEARCH products") and "ix_products_category_created" in listing
        assert "ix_orders_user_open" in orders
    else:
        assert reviews == "SCAN reviews"
        assert "SCAN products" in listing and "ix_" not in listing
        assert "ix_" not in orders
    with shop.shop.db.connect() as conn:
        names = {ix["name"] for ix in sa.inspect(conn).get_indexes("reviews")}
    assert ("ix_reviews_product_rating" in names) is (profile == "after")


def test_a_load_racing_an_update_is_not_cached() -> None:
    # A reader that loaded rows while an update committed and invalidated must not store them.
    cache = ResponseCache(
        MemoryBackend(60), CacheMetrics("race", registry=CollectorRegistry()), ttl=60
    )

    def load_during_update() -> dict[str, int]:
        cache.invalidate(["product:1"])  # the update lands while this load runs
        return {"price_cents": 100}

    assert cache.get_or_load("product:1", ["product:1"], load_during_update) == {"price_cents": 100}
    assert cache.backend.get("product:1") is None
    assert cache.get_or_load("product:1", ["product:1"], lambda: {"price_cents": 200}) == {
        "price_cents": 200
    }
    assert cache.backend.get("product:1") is not None


def test_memory_cache_tags_forget_evicted_keys() -> None:
    # Every listing page is its own key under the "featured" tag; keys the TTL cache evicted
    # must not stay listed under their tags forever (memory would grow with every new page).
    backend = MemoryBackend(ttl=60, maxsize=10)
    for page in range(1000):
        assert backend.set(f"products:featured:{page}", b"{}", 60, ["featured"], 0)
    memberships = sum(len(keys) for keys in backend._tags.values())
    assert memberships <= 4 * 10 + 1
    # Pruning keeps what is still cached: invalidation still removes the live entries.
    assert backend.get("products:featured:999") == b"{}"
    assert backend.invalidate(["featured"]) == 10
    assert backend.get("products:featured:999") is None
