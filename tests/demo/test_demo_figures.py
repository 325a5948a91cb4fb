"""The demo's figures: metric deltas between two scrapes, the summary and the audit table."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from hlthz.replay import Report
from hlthz.tools.demo.evidence import histogram_quantile, parse, server_delta
from hlthz.tools.demo.report import (
    audit_rows,
    optimization_evidence,
    summarize_run,
    time_saved_by_route,
)


class _App:
    """The metrics of docs/metrics.md on a private registry, as an instrumented app exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "http_request_duration_seconds",
            "d",
            ["method", "route", "status_code"],
            buckets=(0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.queries = Histogram(
            "http_request_database_queries",
            "q",
            ["route"],
            buckets=(1, 5, 50),
            registry=self.registry,
        )
        self.n_plus_one = Counter(
            "database_n_plus_one", "n", ["route", "query_type"], registry=self.registry
        )
        self.cache = Counter("cache_requests", "c", ["cache", "result"], registry=self.registry)

    def serve(self, route: str, seconds: float, queries: int, status: str = "200") -> None:
        self.requests.labels("GET", route, status).observe(seconds)
        self.queries.labels(route).observe(queries)

    def scrape(self) -> Any:
        return parse(generate_latest(self.registry).decode())


def test_server_delta_counts_only_what_happened_between_scrapes() -> None:
    app = _App()
    app.serve("/api/products", 0.05, 41)  # warm-up, before the first scrape
    app.cache.labels("products", "miss").inc()
    first = app.scrape()
    for _ in range(3):
        app.serve("/api/products", 0.3, 41)
        app.n_plus_one.labels("/api/products", "product_reviews").inc()
    app.serve("/api/orders", 0.9, 4, status="500")
    app.serve("/metrics", 0.001, 0)
    app.cache.labels("products", "hit").inc(3)
    app.cache.labels("products", "miss").inc()
    delta = server_delta(first, app.scrape(), skip_routes=("/metrics",))

    assert delta["requests"] == 4
    assert delta["server_errors"] == 1
    assert delta["queries"] == 3 * 41 + 4
    assert delta["queries_per_request"] == pytest.approx((3 * 41 + 4) / 4)
    assert delta["queries_per_request_by_route"] == {"/api/orders": 4.0, "/api/products": 41.0}
    assert delta["n_plus_one"] == 3
    assert (delta["cache_hits"], delta["cache_lookups"]) == (3, 4)
    assert delta["cache_hit_rate"] == pytest.approx(0.75)
    assert delta["avg_ms"] == pytest.approx((3 * 300 + 900) / 4, rel=1e-3)
    assert delta["requests_by_route"] == {"/api/orders": 1, "/api/products": 3}
    assert delta["mean_query_ms"] is None  # no query histogram in this app


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    app = _App()
    first = app.scrape()
    # 10 requests: 8 in (0, 0.1], 2 in (0.5, 1]. Rank of P95 = 9.5 -> bucket (0.5, 1],
    # 1.5 of its 2 observations -> 0.5 + 0.5 * 1.5 / 2.
    for _ in range(8):
        app.serve("/a", 0.05, 1)
    for _ in range(2):
        app.serve("/b", 0.7, 1)
    after = app.scrape()
    assert histogram_quantile(first, after, 0.95, "http_request_duration_seconds") == pytest.approx(
        0.875
    )
    assert histogram_quantile(
        first, after, 0.5, "http_request_duration_seconds", route="/a"
    ) == pytest.approx(0.05)
    assert (
        histogram_quantile(first, after, 0.5, "http_request_duration_seconds", route="/zz") is None
    )


def _lat(p95: float) -> dict[str, float]:
    return {"p50": p95 / 4, "p90": p95, "p95": p95, "p99": p95, "max": p95}


def _report(p95: float, order_p95: float, errors: int = 0) -> Report:
    # The required keys of a report v1 (docs/formats.md), read by the one reader.
    routes = [
        {
            "route": "POST /api/orders",
            "requests": 5,
            "errors": errors,
            "latency_ms": _lat(order_p95),
        },
        {"route": "GET /api/products", "requests": 15, "errors": 0, "latency_ms": _lat(p95)},
        {
            "route": "GET /api/users/{id}/dashboard",
            "method": "GET",
            "path": "/api/users/{id}/dashboard",
            "requests": 3,
            "errors": 0,
            "latency_ms": _lat(p95 * 2),
        },
    ]
    summary = {
        "requests": 23,
        "errors": errors,
        "error_rate": errors / 20,
        "skipped": 0,
        "duration_s": 10.0,
        "rps": 2.0,
        "latency_ms": _lat(p95),
        "service_time_ms": _lat(p95),
        "schedule_lag_ms": {"p50": 0.1, "p99": 0.2, "max": 0.3},
    }
    return Report.from_dict({"hlthz_report": 1, "summary": summary, "routes": routes})


def _server(qpr: float, hit_rate: float | None, seconds: dict[str, float]) -> dict[str, Any]:
    return {
        "queries_per_request": qpr,
        "n_plus_one": 3 if qpr > 10 else 0,
        "cache_hit_rate": hit_rate,
        "cache_lookups": 0 if hit_rate is None else 10,
        "avg_ms": 123.0,
        "seconds_by_route": seconds,
        "pool_timeouts": 0,
        "queries_per_request_by_route": {"/api/products": qpr},
        "mean_query_ms": 2.0,
    }


def test_summary_audit_and_where_time_went() -> None:
    found = _report(1, 2).route("POST", "/api/orders")
    assert found is not None and found.requests == 5
    assert _report(1, 2).route("post", "/api/orders") == found
    assert _report(1, 2).route("GET", "/api/orders") is None

    before = summarize_run(
        _report(1500.0, 900.0, errors=2),
        _server(41.0, None, {"/api/products": 30.0, "/api/orders": 10.0}),
    )
    after = summarize_run(
        _report(50.0, 20.0), _server(1.0, 0.8, {"/api/products": 1.0, "/api/orders": 1.0})
    )
    assert before["p95_ms"] == 1500.0 and before["order_post_p95_ms"] == 900.0
    assert before["avg_ms"] == 123.0 and before["avg_source"] == "server"  # no HDR histogram
    assert before["cache_hit_rate"] == 0.0 and before["cache_lookups"] == 0
    assert before["error_rate"] == 0.1

    rows = {r["metric"]: r for r in audit_rows(before, after)}
    assert rows["P95 latency"]["change"] == "30.0x lower"
    assert rows["N+1 detections"]["change"] == "none left"
    assert rows["Cache hit share"]["after"] == "80.0 %"
    assert rows["Error rate"]["before"] == "10.0 %"

    saved = time_saved_by_route(before, after)
    assert [(r["route"], r["share"]) for r in saved] == [
        ("/api/products", pytest.approx(29 / 38, abs=1e-4)),
        ("/api/orders", pytest.approx(9 / 38, abs=1e-4)),
    ]
    assert "join_queries" in saved[0]["optimizations"]

    evidence = {r["optimization"]: r for r in optimization_evidence(before, after)}
    assert (evidence["join_queries"]["before"], evidence["join_queries"]["after"]) == (41.0, 1.0)
    assert evidence["background_jobs"]["change"] == "45.0x lower"
    assert evidence["compression"]["before"] is None  # no burst phase measured
    assert evidence["pool"]["before"] is None
    before["burst"] = {"pool_waits": 6, "pool_timeouts": 2, "listing_bytes_plain": 103_000}
    after["burst"] = {
        "pool_waits": 0,
        "pool_timeouts": 0,
        "listing_bytes_plain": 2_900,
        "listing_bytes_gzip": 800,
    }
    evidence = {r["optimization"]: r for r in optimization_evidence(before, after)}
    assert (evidence["pool"]["before"], evidence["pool"]["after"]) == (8.0, 0.0)
    assert evidence["pool"]["change"] == "none left"
    assert (
        evidence["lean_responses"]["before_text"],
        evidence["lean_responses"]["after_text"],
    ) == (
        "100.6 KB",
        "2.8 KB",
    )
    assert (evidence["compression"]["before"], evidence["compression"]["after"]) == (2_900, 800)
    # The dashboard route is found by method and template, never by splitting "GET /path".
    dashboard = evidence["parallel_upstream"]
    assert (dashboard["before"], dashboard["after"]) == (3000.0, 100.0)
    assert before["routes"][2] == {
        "route": "GET /api/users/{id}/dashboard",
        "method": "GET",
        "path": "/api/users/{id}/dashboard",
        "requests": 3,
        "errors": 0,
        "p95_ms": 3000.0,
    }
