"""The cause rules on synthetic snapshots: each cause's trigger, its edges, and "not measured"."""

from __future__ import annotations

from typing import Any

import pytest

from hlthz.tools.diagnose import (
    Limits,
    Samples,
    build_snapshot,
    diagnose_snapshot,
    render_table,
)
from hlthz.tools.diagnose.snapshot import EXPORTER_MARKER

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf"))
QUERY_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, float("inf"))
QUERY_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, float("inf"))


class Shop:
    """Builds :class:`Samples` the way the exporter's metrics would count them."""

    def __init__(self, *, exporter: bool = True) -> None:
        self.samples = Samples(window_seconds=30.0, source="synthetic")
        if exporter:
            self.samples.add_counter(EXPORTER_MARKER, {"metric": "jobs"}, 0.0)

    def requests(
        self,
        method: str,
        route: str,
        n: int,
        seconds: float,
        *,
        status: str = "200",
        queries: int | None = None,
        query_seconds: float = 0.0,
        size: int | None = None,
    ) -> Shop:
        labels = {"method": method, "route": route, "status_code": status}
        s = self.samples
        s.add_counter("http_request_duration_seconds_count", labels, n)
        s.add_counter("http_request_duration_seconds_sum", labels, n * seconds)
        for le in REQUEST_BUCKETS:
            s.add_counter(
                "http_request_duration_seconds_bucket",
                {**labels, "le": str(le)},
                n if seconds <= le else 0,
            )
        if queries is not None:
            self.queries(route, n, queries, query_seconds)
        if size is not None:
            s.add_counter("http_response_size_bytes_count", {"method": method, "route": route}, n)
            s.add_counter(
                "http_response_size_bytes_sum", {"method": method, "route": route}, n * size
            )
        return self

    def queries(self, route: str, n: int, per_request: int, seconds: float) -> Shop:
        s = self.samples
        s.add_counter("http_request_database_queries_count", {"route": route}, n)
        s.add_counter("http_request_database_queries_sum", {"route": route}, n * per_request)
        for le in QUERY_BUCKETS:
            s.add_counter(
                "http_request_database_queries_bucket",
                {"route": route, "le": str(le)},
                n if per_request <= le else 0,
            )
        if per_request:
            s.add_counter("http_request_database_seconds_total", {"route": route}, n * seconds)
        return self

    def query_type(self, name: str, runs: int, seconds: float) -> Shop:
        s = self.samples
        s.add_counter("database_query_duration_seconds_count", {"query_type": name}, runs)
        s.add_counter("database_query_duration_seconds_sum", {"query_type": name}, runs * seconds)
        for le in QUERY_SECONDS:
            s.add_counter(
                "database_query_duration_seconds_bucket",
                {"query_type": name, "le": str(le)},
                runs if seconds <= le else 0,
            )
        return self

    def counter(self, name: str, value: float, **labels: str) -> Shop:
        self.samples.add_counter(name, labels, value)
        return self

    def gauge(self, name: str, value: float, **labels: str) -> Shop:
        self.samples.add_gauge(name, labels, value)
        return self

    def diagnose(self, **limits: Any) -> Any:
        from hlthz.alerts import load_config

        return diagnose_snapshot(build_snapshot(self.samples), Limits(**limits), load_config(None))


def causes(diagnosis: Any) -> set[tuple[str, str, str]]:
    return {(f.cause, f.method, f.route) for f in diagnosis.findings}


def test_no_traffic_is_no_finding_and_says_so() -> None:
    diagnosis = Shop().diagnose()
    assert diagnosis.findings == ()
    assert diagnosis.not_measured["*"] == "no requests in the window"
    assert "no findings" in render_table(diagnosis)


def test_an_app_without_the_exporter_is_not_measured_not_a_crash() -> None:
    diagnosis = Shop(exporter=False).diagnose()
    assert diagnosis.findings == ()
    assert set(diagnosis.not_measured) >= {"n_plus_one", "pool_exhaustion", "large_responses"}


def test_missing_families_are_not_measured_while_the_rest_is_judged() -> None:
    # Requests only: no database hooks, no pool, no sizes, no upstream timing.
    diagnosis = Shop().requests("GET", "/a", 50, 0.02).diagnose()
    assert diagnosis.findings == ()
    for cause in ("n_plus_one", "slow_queries", "pool_exhaustion", "cache_misses"):
        assert cause in diagnosis.not_measured
    assert "large_responses" in diagnosis.not_measured
    assert "sequential_upstream" in diagnosis.not_measured
    assert "not measured: pool_exhaustion" in render_table(diagnosis)


def test_n_plus_one_from_the_detector_and_its_threshold() -> None:
    shop = Shop().requests("GET", "/items", 20, 0.3, queries=21, query_seconds=0.1)
    shop.counter("database_n_plus_one_total", 20, route="/items", query_type="item_tags")
    found = shop.diagnose()
    assert ("n_plus_one", "GET", "/items") in causes(found)
    finding = found.findings[0]
    assert finding.evidence["queries_per_request"] == 21
    assert finding.evidence["repeated_query_types"] == ["item_tags"]
    assert finding.runbook.endswith("APIHighLatencyP95.md")
    # One request in 20 with an N+1 is under the 10 % share: not a finding.
    quiet = Shop().requests("GET", "/items", 20, 0.3, queries=3, query_seconds=0.01)
    quiet.counter("database_n_plus_one_total", 1, route="/items", query_type="item_tags")
    assert "n_plus_one" not in {f.cause for f in quiet.diagnose().findings}


def test_n_plus_one_counts_only_requests_that_reached_the_database() -> None:
    # 18 of 20 served from a cache (0 queries); both misses ran the N+1.
    shop = Shop().requests("GET", "/items", 18, 0.002, queries=0)
    shop.requests("GET", "/items", 2, 0.3)
    shop.queries("/items", 2, 21, 0.1)
    shop.counter("database_n_plus_one_total", 2, route="/items", query_type="item_tags")
    assert "n_plus_one" in {f.cause for f in shop.diagnose().findings}


def test_slow_queries_need_a_slow_median_not_a_few_slow_runs() -> None:
    slow = Shop().requests("GET", "/a", 20, 0.1, queries=2, query_seconds=0.02)
    slow.query_type("scan_reviews", 40, 0.008).query_type("by_id", 40, 0.0004)
    found = [f for f in slow.diagnose().findings if f.cause == "slow_queries"]
    assert len(found) == 1 and found[0].route == "*"
    assert [t["query_type"] for t in found[0].evidence["slow_query_types"]] == ["scan_reviews"]
    fast = Shop().requests("GET", "/a", 20, 0.1, queries=2, query_seconds=0.001)
    fast.query_type("by_id", 40, 0.0004)
    assert "slow_queries" not in {f.cause for f in fast.diagnose().findings}


def test_pool_waits_are_critical_a_full_pool_alone_a_warning() -> None:
    base = Shop().requests("GET", "/a", 20, 0.1)
    base.gauge("db_pool_connections_max", 10, pool="db").gauge(
        "db_pool_connections_in_use", 10, pool="db"
    )
    base.counter("db_pool_acquire_waits_total", 0, pool="db")
    base.counter("db_pool_acquire_timeouts_total", 0, pool="db")
    full = [f for f in base.diagnose().findings if f.cause == "pool_exhaustion"]
    assert [f.severity for f in full] == ["warning"]
    base.counter("db_pool_acquire_waits_total", 7, pool="db")
    waited = [f for f in base.diagnose().findings if f.cause == "pool_exhaustion"]
    assert waited[0].severity == "critical"
    assert waited[0].evidence["acquire_waits"] == 7
    assert waited[0].runbook.endswith("DBPoolExhausted.md")
    idle = Shop().requests("GET", "/a", 20, 0.1).gauge("db_pool_connections_max", 10, pool="db")
    idle.gauge("db_pool_connections_in_use", 3, pool="db")
    assert not [f for f in idle.diagnose().findings if f.cause == "pool_exhaustion"]


def test_cache_misses_on_read_routes_below_the_hit_threshold() -> None:
    cold = Shop().requests("GET", "/items", 40, 0.05, queries=3, query_seconds=0.01)
    found = [f for f in cold.diagnose().findings if f.cause == "cache_misses"]
    assert found and found[0].severity in ("warning", "info")
    assert found[0].evidence["cache_hit_ratio"] == "no cache look-ups measured"
    warm = Shop().requests("GET", "/items", 36, 0.002, queries=0)
    warm.requests("GET", "/items", 4, 0.05)
    warm.queries("/items", 4, 3, 0.01)
    warm.counter("cache_requests_total", 36, cache="c", result="hit")
    warm.counter("cache_requests_total", 4, cache="c", result="miss")
    assert "cache_misses" not in {f.cause for f in warm.diagnose().findings}
    # A lower threshold in the thresholds file lets a 60 % route pass.
    mixed = Shop().requests("GET", "/items", 24, 0.002, queries=0)
    mixed.requests("GET", "/items", 16, 0.05)
    mixed.queries("/items", 16, 3, 0.01)
    assert "cache_misses" in {f.cause for f in mixed.diagnose().findings}
    assert "cache_misses" not in {f.cause for f in mixed.diagnose(cache_hit_rate=0.5).findings}


def test_inline_side_work_on_writes_only_when_jobs_are_absent_or_idle() -> None:
    shop = Shop().requests("POST", "/orders", 10, 0.8, queries=6, query_seconds=0.02)
    found = [f for f in shop.diagnose().findings if f.cause == "inline_side_work"]
    assert found and found[0].evidence["background_jobs"] == "absent"
    assert found[0].evidence["unexplained_ms"] == pytest.approx(780.0)
    shop.counter("jobs_total", 0, queue="q", job="mail", outcome="success")
    assert found[0].cause in {f.cause for f in shop.diagnose().findings}  # idle: still inline
    shop.counter("jobs_total", 12, queue="q", job="mail", outcome="success")
    assert "inline_side_work" not in {f.cause for f in shop.diagnose().findings}
    # Time spent in queries explains a slow write: not side work.
    busy = Shop().requests("POST", "/orders", 10, 0.8, queries=6, query_seconds=0.75)
    assert "inline_side_work" not in {f.cause for f in busy.diagnose().findings}
    reads = Shop().requests("GET", "/report", 10, 0.8, queries=1, query_seconds=0.01)
    assert "inline_side_work" not in {f.cause for f in reads.diagnose().findings}


def _upstream(shop: Shop, route: str, requests: int, calls: int, seconds: float) -> Shop:
    shop.counter("http_request_upstream_calls_total", calls, route=route)
    shop.counter("http_request_upstream_seconds_count", requests, route=route)
    shop.counter("http_request_upstream_seconds_sum", seconds, route=route)
    return shop


def test_sequential_upstream_when_call_time_adds_up_to_request_time() -> None:
    one_by_one = Shop().requests("GET", "/dash", 10, 0.2)
    _upstream(one_by_one, "/dash", 10, 30, 1.9)  # 190 ms of calls in 200 ms requests
    found = [f for f in one_by_one.diagnose().findings if f.cause == "sequential_upstream"]
    assert found and found[0].evidence["calls_per_request"] == 3
    together = Shop().requests("GET", "/dash", 10, 0.09)
    _upstream(together, "/dash", 10, 30, 1.9)  # 190 ms of calls in 90 ms: they overlapped
    assert "sequential_upstream" not in {f.cause for f in together.diagnose().findings}
    single = Shop().requests("GET", "/dash", 10, 0.2)
    _upstream(single, "/dash", 10, 10, 1.9)  # one call per request: nothing to parallelize
    assert "sequential_upstream" not in {f.cause for f in single.diagnose().findings}


def test_large_responses_by_mean_bytes() -> None:
    fat = Shop().requests("GET", "/items", 10, 0.05, size=100_000)
    found = [f for f in fat.diagnose().findings if f.cause == "large_responses"]
    assert found and found[0].evidence["mean_bytes"] == 100_000
    lean = Shop().requests("GET", "/items", 10, 0.05, size=3_000)
    assert "large_responses" not in {f.cause for f in lean.diagnose().findings}


def test_errors_severity_follows_the_error_rate_threshold() -> None:
    shop = Shop().requests("GET", "/a", 90, 0.05).requests("GET", "/a", 10, 0.05, status="503")
    errors = [f for f in shop.diagnose().findings if f.cause == "errors"]
    assert errors[0].severity == "critical" and errors[0].evidence["error_ratio"] == 0.1
    few = Shop().requests("GET", "/a", 98, 0.05).requests("GET", "/a", 2, 0.05, status="500")
    assert [f.severity for f in few.diagnose().findings if f.cause == "errors"] == ["warning"]
    client = Shop().requests("GET", "/a", 90, 0.05).requests("GET", "/a", 10, 0.05, status="404")
    assert "errors" not in {f.cause for f in client.diagnose().findings}


def test_ranking_severity_first_then_share_then_cause_order() -> None:
    shop = Shop().requests("GET", "/slow", 20, 1.5, queries=21, query_seconds=0.5, size=80_000)
    shop.counter("database_n_plus_one_total", 20, route="/slow", query_type="tags")
    shop.requests("GET", "/other", 20, 0.01, size=50_000)
    diagnosis = shop.diagnose()
    order = [(f.cause, f.route) for f in diagnosis.findings]
    # /slow has P95 >= 1 s: its findings are critical (cache misses stay warning at most).
    assert order[0] == ("n_plus_one", "/slow")
    assert order.index(("large_responses", "/slow")) < order.index(("cache_misses", "/slow"))
    assert diagnosis.findings[-1].severity == "info"
    assert diagnosis.worst() == "critical" and diagnosis.fails("warning")
    document = diagnosis.to_json()
    assert document["hlthz_diagnosis"] == 1
    assert set(document["findings"][0]) >= {
        "route",
        "method",
        "cause",
        "severity",
        "share_of_time",
        "evidence",
    }


def test_formats_doc_lists_the_keys_diagnose_writes() -> None:
    """docs/formats.md's diagnosis v1 tables name exactly the keys ``--json`` writes."""
    import re
    from pathlib import Path

    text = Path(__file__).resolve().parents[2].joinpath("docs", "formats.md").read_text()
    section = text.split("## Diagnosis v1", 1)[1]
    top, finding = section.split("Each finding:", 1)
    keys = lambda part: set(re.findall(r"^\| `([a-z_]+)` \|", part, re.M))  # noqa: E731
    shop = Shop().requests("GET", "/items", 20, 0.3, queries=21, query_seconds=0.1)
    shop.counter("database_n_plus_one_total", 20, route="/items", query_type="tags")
    document = shop.diagnose().to_json()
    assert keys(top) == set(document)
    assert keys(finding.split("```", 1)[0]) == set(document["findings"][0])
    from hlthz.tools.diagnose import CAUSES

    how = Path(__file__).resolve().parents[2].joinpath("docs", "diagnose.md").read_text()
    for cause in CAUSES:
        assert f"`{cause}`" in finding
        assert f"### `{cause}`" in how, f"docs/diagnose.md does not say how {cause} is decided"
