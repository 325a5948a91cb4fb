"""Server-side evidence for ``hlthz demo``: what an API's ``/metrics`` says a replay cost it.

The replay report measures what clients saw; the exporter's metrics explain why (queries per
request, N+1 detections, cache hits, pool waits). :func:`scrape` reads an API's metrics in the
Prometheus text format and :func:`server_delta` turns two scrapes, taken before and after a
replay, into the figures of the demo's audit table, so warm-up traffic is not counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hlthz.metrics_page import page_samples, read_metrics_page

__all__ = ["Scrape", "histogram_quantile", "parse", "scrape", "server_delta"]

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    """One scrape: ``samples[name][labels] = value`` (labels as a sorted tuple of pairs)."""

    samples: dict[str, dict[Labels, float]]

    def total(self, name: str, **match: str) -> float:
        """The sum of ``name``'s samples whose labels include ``match``."""
        return sum(
            value
            for labels, value in self.samples.get(name, {}).items()
            if all(dict(labels).get(k) == v for k, v in match.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """``name`` summed per value of ``label``."""
        sums: dict[str, float] = defaultdict(float)
        for labels, value in self.samples.get(name, {}).items():
            key = dict(labels).get(label)
            if key is not None:
                sums[key] += value
        return dict(sums)


def parse(text: str, *, what: str = "the metrics page") -> Scrape:
    """Parse the Prometheus text exposition format."""
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for sample in page_samples(text, what=what):
        samples[sample.name][tuple(sorted(sample.labels.items()))] = float(sample.value)
    return Scrape(dict(samples))


def scrape(metrics_url: str, *, timeout: float = 10.0) -> Scrape:
    """Fetch and parse ``metrics_url`` (:class:`~hlthz.errors.ScrapeError` when it fails)."""
    text = read_metrics_page(metrics_url, what="the API's metrics page", timeout=timeout)
    return parse(text, what=metrics_url)


def histogram_quantile(
    before: Scrape, after: Scrape, q: float, name: str, **match: str
) -> float | None:
    """PromQL's ``histogram_quantile`` over the buckets observed between two scrapes.

    Linear interpolation inside the bucket, like Prometheus; None without observations.
    """
    buckets: dict[float, float] = defaultdict(float)
    for scrape_, sign in ((after, 1.0), (before, -1.0)):
        for labels, value in scrape_.samples.get(f"{name}_bucket", {}).items():
            label_map = dict(labels)
            if all(label_map.get(k) == v for k, v in match.items()):
                buckets[float(label_map["le"])] += sign * value
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def server_delta(
    before: Scrape, after: Scrape, *, skip_routes: Iterable[str] = ()
) -> dict[str, Any]:
    """What the server counted between two scrapes.

    Returns ``requests``, ``avg_ms`` (server time), ``seconds_by_route``,
    ``requests_by_route``, ``queries``, ``queries_per_request``, ``query_count`` and
    ``mean_query_ms`` (every timed query, also outside requests), ``n_plus_one`` (requests that
    tripped N+1 detection), ``cache_hits``, ``cache_lookups``, ``cache_hit_rate`` (None without
    look-ups), ``cache_errors``, ``pool_timeouts``, ``server_errors`` (5xx) and
    ``queries_per_request_by_route``. ``skip_routes`` leaves out routes such as ``/metrics``.
    """
    skip = set(skip_routes)

    def delta_by(name: str, label: str) -> dict[str, float]:
        old = before.by_label(name, label)
        return {k: v - old.get(k, 0.0) for k, v in after.by_label(name, label).items()}

    def delta(name: str, **match: str) -> float:
        return after.total(name, **match) - before.total(name, **match)

    requests_by_route = {
        route: n
        for route, n in delta_by("http_request_duration_seconds_count", "route").items()
        if route not in skip
    }
    errors_by_status = delta_by("http_request_duration_seconds_count", "status_code")
    queries_by_route = delta_by("http_request_database_queries_sum", "route")
    counted_by_route = delta_by("http_request_database_queries_count", "route")
    requests = sum(requests_by_route.values())
    queries = sum(v for r, v in queries_by_route.items() if r not in skip)
    counted = sum(v for r, v in counted_by_route.items() if r not in skip)
    seconds_by_route = {
        route: seconds
        for route, seconds in delta_by("http_request_duration_seconds_sum", "route").items()
        if route not in skip
    }
    hits = delta("cache_requests_total", result="hit")
    misses = delta("cache_requests_total", result="miss")
    return {
        "requests": int(requests),
        "server_errors": int(sum(v for s, v in errors_by_status.items() if s.startswith("5"))),
        "avg_ms": _ms(_ratio(sum(seconds_by_route.values()), requests)),
        "seconds_by_route": {r: round(v, 4) for r, v in sorted(seconds_by_route.items())},
        "requests_by_route": {r: int(v) for r, v in sorted(requests_by_route.items())},
        "queries": int(queries),
        # Per request that the query histogram observed (every instrumented request).
        "queries_per_request": _ratio(queries, counted or requests),
        "queries_per_request_by_route": {
            route: round(q / counted_by_route[route], 2)
            for route, q in sorted(queries_by_route.items())
            if route not in skip and counted_by_route.get(route)
        },
        "query_count": int(delta("database_query_duration_seconds_count")),
        "mean_query_ms": _ms(
            _ratio(
                delta("database_query_duration_seconds_sum"),
                delta("database_query_duration_seconds_count"),
            )
        ),
        "n_plus_one": int(delta("database_n_plus_one_total")),
        "cache_hits": int(hits),
        "cache_lookups": int(hits + misses),
        "cache_hit_rate": _ratio(hits, hits + misses),
        "cache_errors": int(delta("cache_errors_total")),
        "pool_timeouts": int(delta("db_pool_acquire_timeouts_total")),
        "pool_waits": int(delta("db_pool_acquire_waits_total")),
        "response_bytes": int(delta("http_response_size_bytes_sum")),
        "mean_response_bytes": _ratio(
            delta("http_response_size_bytes_sum"), delta("http_response_size_bytes_count")
        ),
    }
