"""Every endpoint in both profiles on SQLite, and the same data before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hlthz.demo_api.queries import DETAIL_FULL_ONLY, LISTING_FULL_ONLY
from tests.demo_api.conftest import AppFactory, AppHandle, seed_sqlite

PROFILES = ("before", "after")


@pytest.fixture(params=PROFILES)
def shop(
    request: pytest.FixtureRequest, make_app: AppFactory, sqlite_dirs: dict[str, Path]
) -> AppHandle:
    return make_app(request.param, sqlite_dirs[request.param])


def lean(doc: dict[str, Any], full_only: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in full_only}


def test_listing_pages_newest_first(shop: AppHandle) -> None:
    first = shop.client.get("/api/products", params={"per_page": 5})
    second = shop.client.get("/api/products", params={"per_page": 5, "page": 2})
    assert first.status_code == second.status_code == 200
    ids = [p["id"] for p in first.json()["items"]] + [p["id"] for p in second.json()["items"]]
    # Seeded products get older as their id grows.
    assert ids == list(range(1, 11))
    item = first.json()["items"][0]
    assert {
        "id",
        "sku",
        "name",
        "category",
        "price_cents",
        "rating_avg",
        "review_count",
        "stock",
    } <= set(item)


def test_listing_by_category(shop: AppHandle) -> None:
    response = shop.client.get("/api/products", params={"category": "phones", "per_page": 50})
    assert response.status_code == 200
    items = response.json()["items"]
    assert items and all(p["category"] == "phones" for p in items)


def test_listing_past_the_end_is_empty(shop: AppHandle) -> None:
    response = shop.client.get("/api/products", params={"page": 9999, "per_page": 100})
    assert response.status_code == 200
    assert response.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": "many"}, "per_page"),
        ({"category": ""}, "category"),
    ],
)
def test_listing_bad_params_are_422_naming_the_field(
    shop: AppHandle, params: dict[str, Any], field: str
) -> None:
    response = shop.client.get("/api/products", params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["query", field]
    assert detail[0]["msg"]


def test_unknown_category_is_404(shop: AppHandle) -> None:
    response = shop.client.get("/api/products", params={"category": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_product_detail_and_404(shop: AppHandle) -> None:
    response = shop.client.get("/api/products/7")
    assert response.status_code == 200
    doc = response.json()
    assert doc["id"] == 7 and doc["sku"] == "SKU-0000007"
    assert isinstance(doc["specifications"], dict) and len(doc["description"]) > 200
    assert shop.client.get("/api/products/999999").status_code == 404
    assert shop.client.get("/api/products/0").status_code == 422
    assert shop.client.get("/api/products/abc").status_code == 422


def test_categories_conditional_get(shop: AppHandle) -> None:
    response = shop.client.get("/api/categories")
    assert response.status_code == 200
    categories = response.json()["categories"]
    assert categories[0]["slug"] == "laptops"
    assert sum(c["product_count"] for c in categories) == 400
    etag = response.headers["etag"]
    assert response.headers["cache-control"] == "public, max-age=60"
    last_modified = response.headers["last-modified"]
    assert last_modified.endswith("GMT")
    again = shop.client.get("/api/categories", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    since = shop.client.get("/api/categories", headers={"If-Modified-Since": last_modified})
    assert since.status_code == 304
    other = shop.client.get("/api/categories", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


def test_update_product(shop: AppHandle) -> None:
    response = shop.client.put("/api/products/11", json={"name": "Renamed", "price_cents": 4242})
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed" and response.json()["price_cents"] == 4242
    assert shop.client.get("/api/products/11").json()["price_cents"] == 4242
    assert shop.client.put("/api/products/999999", json={"name": "x"}).status_code == 404
    empty = shop.client.put("/api/products/11", json={})
    assert empty.status_code == 422
    unknown = shop.client.put("/api/products/11", json={"colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "colour"]
    assert shop.client.put("/api/products/11", json={"price_cents": -1}).status_code == 422


def test_create_order(shop: AppHandle) -> None:
    body = {
        "user_id": 3,
        "items": [{"product_id": 5, "quantity": 2}, {"product_id": 6, "quantity": 1}],
    }
    response = shop.client.post("/api/orders", json=body)
    assert response.status_code == 201
    order = response.json()["order"]
    assert order["status"] == "pending" and order["user_id"] == 3
    prices = {i["product_id"]: i["unit_price_cents"] for i in order["items"]}
    assert order["total_cents"] == 2 * prices[5] + prices[6]
    assert response.json()["side_work"] == (
        "queued" if shop.shop.settings.profile == "after" else "inline"
    )


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"user_id": 999999, "items": [{"product_id": 1, "quantity": 1}]}, ["body", "user_id"]),
        (
            {"user_id": 1, "items": [{"product_id": 999999, "quantity": 1}]},
            ["body", "items", 0, "product_id"],
        ),
        ({"user_id": 1, "items": []}, ["body", "items"]),
        (
            {"user_id": 1, "items": [{"product_id": 1, "quantity": 0}]},
            ["body", "items", 0, "quantity"],
        ),
    ],
)
def test_bad_orders_are_422(shop: AppHandle, body: dict[str, Any], loc: list[Any]) -> None:
    response = shop.client.post("/api/orders", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_dashboard(shop: AppHandle) -> None:
    response = shop.client.get("/api/users/4/dashboard")
    assert response.status_code == 200
    doc = response.json()
    assert doc["user"]["id"] == 4
    assert {"profile", "orders", "preferences"} <= set(doc)
    assert all(o["status"] != "cancelled" for o in doc["orders"]["open"])
    assert shop.client.get("/api/users/999999/dashboard").status_code == 404


def test_health_metrics_openapi(shop: AppHandle) -> None:
    health = shop.client.get("/health").json()
    assert health["status"] == "ok" and health["profile"] == shop.shop.settings.profile
    metrics = shop.client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_request_duration_seconds" in metrics.text
    paths = shop.client.get("/openapi.json").json()["paths"]
    assert {"/api/products", "/api/products/{product_id}", "/api/categories", "/api/orders",
            "/api/users/{user_id}/dashboard", "/health"} <= set(paths)  # fmt: skip
    assert "/admin/faults" not in paths


def test_compression_only_after(shop: AppHandle) -> None:
    response = shop.client.get(
        "/api/products", params={"per_page": 50}, headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    after = shop.shop.settings.profile == "after"
    assert (response.headers.get("content-encoding") == "gzip") is after
    small = shop.client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert len(small.content) < 1024 and small.headers.get("content-encoding") is None


def test_before_and_after_return_the_same_data(make_app: AppFactory, tmp_path: Path) -> None:
    # Fresh databases: other tests of this module write orders and prices.
    before = make_app("before", seed_sqlite(tmp_path / "before"))
    after = make_app("after", seed_sqlite(tmp_path / "after"))
    for params in ({"per_page": 30}, {"category": "tablets", "per_page": 10, "page": 2}):
        b = before.client.get("/api/products", params=params).json()
        a = after.client.get("/api/products", params=params).json()
        assert [lean(i, LISTING_FULL_ONLY) for i in b["items"]] == a["items"]
        assert "meta" not in b and a["meta"]["page"] == params.get("page", 1)
        assert all(len(i["reviews"]) == i["review_count"] for i in b["items"])
    for product_id in (2, 77, 399):
        b = before.client.get(f"/api/products/{product_id}").json()
        a = after.client.get(f"/api/products/{product_id}").json()
        assert lean(b, DETAIL_FULL_ONLY) == a
        assert len(b["related"]) == 5 and len(b["reviews"]) == b["review_count"]
    b_cats = before.client.get("/api/categories").json()
    assert b_cats == after.client.get("/api/categories").json()
