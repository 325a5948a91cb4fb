"""One typed picture of what an app did during a window, whatever the source.

Both sources (two scrapes of ``/metrics``, or Prometheus over a range) produce
:class:`Samples`: each counter's or histogram part's increase over the window, and each gauge's
highest value in it. :func:`build_snapshot` turns them into a :class:`Snapshot`, the only thing
the cause rules read. A metric family the app does not expose stays ``None`` (or is absent from
``present``), so a rule can say "not measured" instead of reading an empty family as zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: The exporter's own counter: one series per labelled metric from the start, so its presence
#: tells "the HLTHZ exporter is there, nothing happened" from "not instrumented".
EXPORTER_MARKER = "hlthz_exporter_series_folded_total"

#: Counter and histogram samples read (increase over the window), with the labels kept.
COUNTER_SAMPLES: dict[str, tuple[str, ...]] = {
    "http_request_duration_seconds_bucket": ("method", "route", "status_code", "le"),
    "http_request_duration_seconds_sum": ("method", "route", "status_code"),
    "http_request_duration_seconds_count": ("method", "route", "status_code"),
    "http_request_database_queries_bucket": ("route", "le"),
    "http_request_database_queries_sum": ("route",),
    "http_request_database_queries_count": ("route",),
    "http_request_database_seconds_total": ("route",),
    "database_query_duration_seconds_bucket": ("query_type", "le"),
    "database_query_duration_seconds_sum": ("query_type",),
    "database_query_duration_seconds_count": ("query_type",),
    "database_n_plus_one_total": ("route", "query_type"),
    "http_response_size_bytes_sum": ("method", "route"),
    "http_response_size_bytes_count": ("method", "route"),
    "http_request_upstream_seconds_sum": ("route",),
    "http_request_upstream_seconds_count": ("route",),
    "http_request_upstream_calls_total": ("route",),
    "upstream_request_duration_seconds_sum": ("upstream",),
    "upstream_request_duration_seconds_count": ("upstream",),
    "db_pool_acquire_timeouts_total": ("pool",),
    "db_pool_acquire_waits_total": ("pool",),
    "cache_requests_total": ("cache", "result"),
    "cache_errors_total": ("cache",),
    "jobs_total": ("queue", "job", "outcome"),
    EXPORTER_MARKER: ("metric",),
}
#: Gauges read (highest value in the window).
GAUGE_SAMPLES: dict[str, tuple[str, ...]] = {
    "db_pool_connections_in_use": ("pool",),
    "db_pool_connections_max": ("pool",),
    "db_pool_pending_acquires": ("pool",),
    "job_queue_depth": ("queue",),
}

Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: Mapping[str, str], keep: Iterable[str]) -> Labels:
    """The ``keep`` labels of ``mapping`` as a hashable, ordered tuple (missing ones empty)."""
    return tuple((name, str(mapping.get(name, ""))) for name in keep)


@dataclass
class Samples:
    """What a source read: ``counters[name][labels]`` increases, ``gauges`` window maxima."""

    window_seconds: float
    source: str
    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def add_counter(self, name: str, labels: Mapping[str, str], value: float) -> None:
        keep = COUNTER_SAMPLES[name]
        series = self.counters.setdefault(name, {})
        key = labels_of(labels, keep)
        series[key] = series.get(key, 0.0) + max(0.0, value)

    def add_gauge(self, name: str, labels: Mapping[str, str], value: float) -> None:
        keep = GAUGE_SAMPLES[name]
        series = self.gauges.setdefault(name, {})
        key = labels_of(labels, keep)
        series[key] = max(series.get(key, -math.inf), value)


@dataclass(frozen=True)
class Histogram:
    """A histogram's increase: observations, their sum, cumulative ``(le, count)`` buckets."""

    count: float
    total: float
    buckets: tuple[tuple[float, float], ...] = ()

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def at_most(self, bound: float) -> float:
        """Observations at or below ``bound`` (a bucket boundary), 0 when unknown."""
        for le, count in self.buckets:
            if le == bound:
                return count
        return 0.0

    def quantile(self, q: float) -> float | None:
        """Prometheus' ``histogram_quantile`` on these buckets (None without observations)."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.buckets[-1][1]
        previous_le, previous_count = 0.0, 0.0
        for le, count in self.buckets:
            if count >= rank:
                if math.isinf(le):
                    return previous_le
                if count == previous_count:
                    return le
                return previous_le + (le - previous_le) * (rank - previous_count) / (
                    count - previous_count
                )
            previous_le, previous_count = le, count
        return previous_le


@dataclass(frozen=True)
class RouteStats:
    """One ``METHOD route``: requests, 5xx, server seconds, duration and size histograms."""

    method: str
    route: str
    requests: float
    errors: float
    duration: Histogram
    response_size: Histogram | None

    @property
    def seconds(self) -> float:
        return self.duration.total


@dataclass(frozen=True)
class PoolStats:
    """One connection pool: capacity, peaks in the window, waits and timeouts counted."""

    name: str
    capacity: float | None
    in_use_peak: float | None
    pending_peak: float | None
    waits: float | None
    timeouts: float | None


@dataclass(frozen=True)
class CacheStats:
    """One cache's look-ups in the window."""

    name: str
    hits: float
    misses: float
    errors: float

    @property
    def lookups(self) -> float:
        return self.hits + self.misses


@dataclass(frozen=True)
class Snapshot:
    """What the app did in the window, by route, query type, pool, cache and job queue.

    ``present`` names the metric samples the source found (an instrumented app without a
    cache has no ``cache_requests_total``). Route-level figures that the exporter records per
    route only (queries, N+1, upstream calls) are keyed by the route template.
    """

    window_seconds: float
    source: str
    exporter: bool
    present: frozenset[str]
    routes: tuple[RouteStats, ...]
    queries: Mapping[str, Histogram]
    db_seconds: Mapping[str, float]
    n_plus_one: Mapping[str, Mapping[str, float]]
    upstream_seconds: Mapping[str, float]
    upstream_requests: Mapping[str, float]
    upstream_calls: Mapping[str, float]
    upstreams: Mapping[str, Histogram]
    query_types: Mapping[str, Histogram]
    pools: tuple[PoolStats, ...]
    caches: tuple[CacheStats, ...]
    job_runs: float | None

    @property
    def server_seconds(self) -> float:
        return sum(r.seconds for r in self.routes)

    @property
    def requests(self) -> float:
        return sum(r.requests for r in self.routes)

    def has(self, *names: str) -> bool:
        """True when every sample name in ``names`` was found."""
        return all(name in self.present for name in names)


def _histograms(
    samples: Samples, base: str, keys: tuple[str, ...]
) -> dict[tuple[str, ...], Histogram]:
    """Histograms of ``base`` grouped by the ``keys`` labels (buckets summed per boundary)."""
    counts: dict[tuple[str, ...], float] = defaultdict(float)
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(lambda: defaultdict(float))

    def key_of(labels: Labels) -> tuple[str, ...]:
        found = dict(labels)
        return tuple(found.get(k, "") for k in keys)

    for labels, value in samples.counters.get(base + "_count", {}).items():
        counts[key_of(labels)] += value
    for labels, value in samples.counters.get(base + "_sum", {}).items():
        sums[key_of(labels)] += value
    for labels, value in samples.counters.get(base + "_bucket", {}).items():
        le = dict(labels).get("le", "")
        try:
            bound = float(le)
        except ValueError:
            continue
        buckets[key_of(labels)][bound] += value
    return {
        key: Histogram(
            count=counts[key],
            total=sums.get(key, 0.0),
            buckets=tuple(sorted(buckets.get(key, {}).items())),
        )
        for key in counts
    }


def _by(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, value in samples.counters.get(name, {}).items():
        found = dict(labels)
        out[tuple(found.get(k, "") for k in keys)] += value
    return out


def build_snapshot(samples: Samples) -> Snapshot:
    """The :class:`Snapshot` of ``samples``."""
    present = frozenset(
        [n for n, series in samples.counters.items() if series]
        + [n for n, series in samples.gauges.items() if series]
    )
    # The status code is summed out for the route's histogram; 5xx are counted apart.
    by_method_route = _histograms(
        _relabel_drop(samples, "http_request_duration_seconds", "status_code"),
        "http_request_duration_seconds",
        ("method", "route"),
    )
    errors: dict[tuple[str, str], float] = defaultdict(float)
    for labels, value in samples.counters.get("http_request_duration_seconds_count", {}).items():
        found = dict(labels)
        if found.get("status_code", "").startswith("5"):
            errors[(found.get("method", ""), found.get("route", ""))] += value
    sizes = _histograms(samples, "http_response_size_bytes", ("method", "route"))
    has_sizes = "http_response_size_bytes_count" in present
    routes = tuple(
        RouteStats(
            method=method,
            route=route,
            requests=hist.count,
            errors=errors.get((method, route), 0.0),
            duration=hist,
            response_size=sizes.get((method, route), Histogram(0.0, 0.0)) if has_sizes else None,
        )
        for (method, route), hist in sorted(by_method_route.items())
    )
    queries = {
        k[0]: h
        for k, h in _histograms(samples, "http_request_database_queries", ("route",)).items()
    }
    n_plus_one: dict[str, dict[str, float]] = defaultdict(dict)
    for (route, query_type), value in _by(
        samples, "database_n_plus_one_total", "route", "query_type"
    ).items():
        n_plus_one[route][query_type] = value
    upstream_sum = {
        k[0]: v for k, v in _by(samples, "http_request_upstream_seconds_sum", "route").items()
    }
    upstream_requests = {
        k[0]: v for k, v in _by(samples, "http_request_upstream_seconds_count", "route").items()
    }
    upstream_calls = {
        k[0]: v for k, v in _by(samples, "http_request_upstream_calls_total", "route").items()
    }
    upstreams = {
        k[0]: h
        for k, h in _histograms(samples, "upstream_request_duration_seconds", ("upstream",)).items()
    }
    query_types = {
        k[0]: h
        for k, h in _histograms(samples, "database_query_duration_seconds", ("query_type",)).items()
    }
    pools = _pools(samples, present)
    caches = _caches(samples)
    job_runs = (
        sum(samples.counters["jobs_total"].values()) if "jobs_total" in samples.counters else None
    )
    return Snapshot(
        window_seconds=samples.window_seconds,
        source=samples.source,
        exporter=EXPORTER_MARKER in present,
        present=present,
        routes=routes,
        queries=queries,
        db_seconds={
            k[0]: v for k, v in _by(samples, "http_request_database_seconds_total", "route").items()
        },
        n_plus_one={k: dict(v) for k, v in n_plus_one.items()},
        upstream_seconds=upstream_sum,
        upstream_requests=upstream_requests,
        upstream_calls=upstream_calls,
        upstreams=upstreams,
        query_types=query_types,
        pools=pools,
        caches=caches,
        job_runs=job_runs,
    )


def _relabel_drop(samples: Samples, base: str, label: str) -> Samples:
    """A copy of ``base``'s histogram samples without ``label`` (summed over it)."""
    out = Samples(samples.window_seconds, samples.source)
    for suffix in ("_bucket", "_sum", "_count"):
        series: dict[Labels, float] = defaultdict(float)
        for labels, value in samples.counters.get(base + suffix, {}).items():
            series[tuple((k, v) for k, v in labels if k != label)] += value
        out.counters[base + suffix] = dict(series)
    return out


def _pools(samples: Samples, present: frozenset[str]) -> tuple[PoolStats, ...]:
    names: set[str] = set()
    for name in (
        "db_pool_connections_max",
        "db_pool_connections_in_use",
        "db_pool_pending_acquires",
    ):
        names.update(dict(labels).get("pool", "") for labels in samples.gauges.get(name, {}))
    for name in ("db_pool_acquire_timeouts_total", "db_pool_acquire_waits_total"):
        names.update(dict(labels).get("pool", "") for labels in samples.counters.get(name, {}))

    def gauge(name: str, pool: str) -> float | None:
        return samples.gauges.get(name, {}).get((("pool", pool),))

    def counter(name: str, pool: str) -> float | None:
        if name not in present:
            return None
        return samples.counters.get(name, {}).get((("pool", pool),), 0.0)

    return tuple(
        PoolStats(
            name=pool,
            capacity=gauge("db_pool_connections_max", pool),
            in_use_peak=gauge("db_pool_connections_in_use", pool),
            pending_peak=gauge("db_pool_pending_acquires", pool),
            waits=counter("db_pool_acquire_waits_total", pool),
            timeouts=counter("db_pool_acquire_timeouts_total", pool),
        )
        for pool in sorted(n for n in names if n)
    )


def _caches(samples: Samples) -> tuple[CacheStats, ...]:
    results = _by(samples, "cache_requests_total", "cache", "result")
    errors = _by(samples, "cache_errors_total", "cache")
    names = sorted({k[0] for k in results} | {k[0] for k in errors})
    return tuple(
        CacheStats(
            name=name,
            hits=results.get((name, "hit"), 0.0),
            misses=results.get((name, "miss"), 0.0),
            errors=errors.get((name,), 0.0),
        )
        for name in names
        if name
    )
