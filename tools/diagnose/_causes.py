"""The cause rules: a :class:`Snapshot` in, ranked :class:`Finding` objects out.

Each rule reads only the snapshot and the :class:`Limits` (the thresholds file's numbers plus
the diagnosis' own), and either returns findings or says why it could not judge ("not
measured": a metric the rule needs is absent). How each cause is decided, with the PromQL
behind it: docs/diagnose.md.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hlthz.tools.diagnose.snapshot import Histogram, RouteStats, Snapshot

#: Every cause, in the order ties are broken (the usual order of finding them).
CAUSES: tuple[str, ...] = (
    "n_plus_one",
    "slow_queries",
    "pool_exhaustion",
    "cache_misses",
    "inline_side_work",
    "sequential_upstream",
    "large_responses",
    "errors",
)
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
#: The alert whose runbook covers each cause (alerts/runbooks/<Alert>.md).
RUNBOOK_ALERTS: dict[str, str] = {
    "n_plus_one": "APIHighLatencyP95",
    "slow_queries": "APIHighLatencyP95",
    "pool_exhaustion": "DBPoolExhausted",
    "cache_misses": "LowCacheHitRate",
    "inline_side_work": "APIHighLatencyP95",
    "sequential_upstream": "APIHighLatencyP95",
    "large_responses": "APIHighLatencyP95",
    "errors": "APIHighErrorRate",
}
#: Methods whose routes write (side work after a write is what jobs are for).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALL = "*"


@dataclass(frozen=True)
class Limits:
    """Thresholds of the rules. The first four come from the thresholds file (hlthz.yaml)."""

    latency_warning: float = 0.5
    latency_critical: float = 1.0
    error_rate: float = 0.05
    cache_hit_rate: float = 0.7
    #: Below this many requests in the window a route is not judged.
    min_requests: float = 5
    #: Share of a route's requests with an N+1 detection that makes it an N+1 route.
    n_plus_one_share: float = 0.1
    #: Without the N+1 metric: queries per request that make it one.
    n_plus_one_queries: float = 20
    #: A query type is slow (a likely missing index) when more than half of its runs took
    #: longer than this (a bucket boundary: no interpolation), and it takes this share of all
    #: query time. The median, not the mean: threads waiting for the GIL inflate a few runs.
    slow_query_seconds: float = 0.0025
    min_query_runs: float = 5
    slow_query_share: float = 0.05
    #: Share of server time a read route needs before its cache misses matter.
    cache_route_share: float = 0.02
    #: Seconds per request (and share of it) not explained by queries or upstream calls.
    inline_seconds: float = 0.25
    inline_share: float = 0.5
    #: Upstream calls per request, and added-up call time over request time, of a route whose
    #: calls run one after another (above ``upstream_overlap`` they overlapped).
    upstream_calls: float = 2
    upstream_share: float = 0.5
    upstream_overlap: float = 1.1
    #: Mean response bytes of a large response.
    response_bytes: float = 32768
    #: 5xx share below which errors are not reported.
    error_floor: float = 0.01


@dataclass(frozen=True)
class Finding:
    """One cause on one route (``*`` for the whole app), with its evidence."""

    route: str
    method: str
    cause: str
    severity: str
    share_of_time: float
    evidence: dict[str, Any]
    runbook: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "method": self.method,
            "cause": self.cause,
            "severity": self.severity,
            "share_of_time": round(self.share_of_time, 4),
            "evidence": self.evidence,
            "runbook": self.runbook,
        }


@dataclass
class _Context:
    snapshot: Snapshot
    limits: Limits
    not_measured: dict[str, str] = field(default_factory=dict)

    @property
    def server_seconds(self) -> float:
        return self.snapshot.server_seconds

    def share(self, seconds: float) -> float:
        total = self.server_seconds
        return min(1.0, max(0.0, seconds / total)) if total > 0 else 0.0

    def latency_severity(self, duration: Histogram) -> str:
        p95 = duration.quantile(0.95)
        if p95 is None:
            return "info"
        if p95 >= self.limits.latency_critical:
            return "critical"
        if p95 >= self.limits.latency_warning:
            return "warning"
        return "info"

    def by_route(self) -> dict[str, list[RouteStats]]:
        out: dict[str, list[RouteStats]] = defaultdict(list)
        for stats in self.snapshot.routes:
            out[stats.route].append(stats)
        return out

    def main_method(self, route: str) -> RouteStats | None:
        """The method with most requests on ``route`` (route-only metrics are reported on it)."""
        methods = self.by_route().get(route, [])
        return max(methods, key=lambda s: s.requests, default=None)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _n_plus_one(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("http_request_database_queries_count"):
        ctx.not_measured["n_plus_one"] = "no http_request_database_queries (no database hooks)"
        return
    detector = snap.has("database_n_plus_one_total")
    for route, queries in snap.queries.items():
        stats = ctx.main_method(route)
        if stats is None or queries.count < lim.min_requests:
            continue
        per_request = queries.total / queries.count
        repeated = snap.n_plus_one.get(route, {})
        # Share of the requests that reached the database: a cache in front hides the N+1 on
        # its hits, not on its misses.
        with_db = queries.count - queries.at_most(0.0)
        worst = max(repeated.values(), default=0.0) / with_db if with_db > 0 else 0.0
        limit, value = (
            (lim.n_plus_one_share, worst) if detector else (lim.n_plus_one_queries, per_request)
        )
        if value < limit:
            continue
        seconds = sum(s.seconds for s in ctx.by_route()[route])
        yield Finding(
            route=route,
            method=stats.method,
            cause="n_plus_one",
            severity=ctx.latency_severity(stats.duration),
            share_of_time=ctx.share(seconds),
            evidence={
                "queries_per_request": _r(per_request, 2),
                "query_ms_per_request": _ms(snap.db_seconds.get(route, 0.0) / queries.count),
                "database_requests_with_n_plus_one": _r(worst, 3),
                "repeated_query_types": sorted(q for q, n in repeated.items() if n > 0),
                "p95_ms": _ms(stats.duration.quantile(0.95)),
                "requests": round(queries.count),
            },
        )


def _slow_queries(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("database_query_duration_seconds_count"):
        ctx.not_measured["slow_queries"] = "no database_query_duration_seconds (no database hooks)"
        return
    query_seconds = sum(h.total for h in snap.query_types.values())
    if query_seconds <= 0:
        return
    slow = {
        name: h
        for name, h in snap.query_types.items()
        if h.count >= lim.min_query_runs
        and h.at_most(lim.slow_query_seconds) < h.count / 2
        and h.total / query_seconds >= lim.slow_query_share
    }
    if not slow:
        return
    slow_seconds = sum(h.total for h in slow.values())
    overall = _merged(r.duration for r in snap.routes)
    ranked = sorted(slow.items(), key=lambda kv: -kv[1].total)
    yield Finding(
        route=ALL,
        method=ALL,
        cause="slow_queries",
        severity=ctx.latency_severity(overall),
        share_of_time=ctx.share(slow_seconds),
        evidence={
            "query_time_share": _r(ctx.share(query_seconds), 3),
            "slow_query_types": [
                {
                    "query_type": name,
                    "runs": round(h.count),
                    "mean_ms": _ms(h.mean),
                    "p50_ms": _ms(h.quantile(0.5)),
                    "p95_ms": _ms(h.quantile(0.95)),
                    "share_of_query_time": _r(h.total / query_seconds, 3),
                }
                for name, h in ranked[:5]
            ],
            "hint": "likely a missing index: EXPLAIN the slowest query type",
        },
    )


def _merged(histograms: Iterable[Histogram]) -> Histogram:
    count, total = 0.0, 0.0
    buckets: dict[float, float] = defaultdict(float)
    for h in histograms:
        count += h.count
        total += h.total
        for le, n in h.buckets:
            buckets[le] += n
    return Histogram(count, total, tuple(sorted(buckets.items())))


def _pool_exhaustion(ctx: _Context) -> Iterable[Finding]:
    snap = ctx.snapshot
    if not snap.pools:
        ctx.not_measured["pool_exhaustion"] = "no db_pool_* metrics (no instrumented pool)"
        return
    for pool in snap.pools:
        waits = pool.waits or 0.0
        timeouts = pool.timeouts or 0.0
        pending = pool.pending_peak or 0.0
        full = (
            pool.capacity is not None
            and pool.in_use_peak is not None
            and pool.capacity > 0
            and pool.in_use_peak >= pool.capacity
        )
        if waits <= 0 and timeouts <= 0 and pending <= 0 and not full:
            continue
        waited = waits > 0 or timeouts > 0 or pending > 0
        requests = snap.requests
        yield Finding(
            route=ALL,
            method=ALL,
            cause="pool_exhaustion",
            severity="critical" if waited else "warning",
            share_of_time=min(1.0, (waits + timeouts) / requests) if requests > 0 else 0.0,
            evidence={
                "pool": pool.name,
                "max_connections": pool.capacity,
                "in_use_peak": pool.in_use_peak,
                "callers_waiting_peak": pool.pending_peak,
                "acquire_waits": pool.waits,
                "acquire_timeouts": pool.timeouts,
                "alert": "DBPoolExhausted would fire" if waited or full else "",
            },
        )


def _cache_misses(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("http_request_database_queries_count"):
        ctx.not_measured["cache_misses"] = "no http_request_database_queries (no database hooks)"
        return
    caches = {
        c.name: _r(c.hits / c.lookups, 3) if c.lookups else None for c in snap.caches
    } or "no cache look-ups measured"
    for stats in snap.routes:
        if stats.method != "GET" or stats.requests < lim.min_requests:
            continue
        queries = snap.queries.get(stats.route)
        if queries is None or queries.count <= 0 or snap.upstream_requests.get(stats.route):
            continue  # a route that calls other services is not a page cache's job
        share = ctx.share(stats.seconds)
        if share < lim.cache_route_share:
            continue
        served_without_db = queries.at_most(0.0) / queries.count
        if served_without_db >= lim.cache_hit_rate:
            continue
        severity = ctx.latency_severity(stats.duration)
        yield Finding(
            route=stats.route,
            method=stats.method,
            cause="cache_misses",
            severity="warning" if severity == "critical" else severity,
            share_of_time=share,
            evidence={
                "served_without_database": _r(served_without_db, 3),
                "threshold": lim.cache_hit_rate,
                "queries_per_request": _r(queries.total / queries.count, 2),
                "cache_hit_ratio": caches,
                "p95_ms": _ms(stats.duration.quantile(0.95)),
            },
        )


def _inline_side_work(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("http_request_database_seconds_total") and snap.has(
        "http_request_database_queries_count"
    ):
        ctx.not_measured["inline_side_work"] = (
            "no http_request_database_seconds_total (exporter too old to split query time)"
        )
        return
    jobs = "absent" if snap.job_runs is None else ("idle" if snap.job_runs <= 0 else "running")
    if jobs == "running":
        return  # side work already runs as jobs; what is left is the request's own work
    by_route = ctx.by_route()
    for stats in snap.routes:
        if stats.method not in WRITE_METHODS or stats.requests < lim.min_requests:
            continue
        mean = stats.seconds / stats.requests
        route_requests = sum(s.requests for s in by_route[stats.route])
        # Query and upstream time are per route: share them out by requests.
        queries = snap.db_seconds.get(stats.route, 0.0) / route_requests
        upstream = snap.upstream_seconds.get(stats.route, 0.0) / route_requests
        unexplained = mean - queries - upstream
        if unexplained < lim.inline_seconds or unexplained / mean < lim.inline_share:
            continue
        yield Finding(
            route=stats.route,
            method=stats.method,
            cause="inline_side_work",
            severity=ctx.latency_severity(stats.duration),
            share_of_time=ctx.share(unexplained * stats.requests),
            evidence={
                "mean_ms": _ms(mean),
                "unexplained_ms": _ms(unexplained),
                "unexplained_share": _r(unexplained / mean, 3),
                "query_ms_per_request": _ms(queries),
                "upstream_ms_per_request": _ms(upstream),
                "background_jobs": jobs,
            },
        )


def _sequential_upstream(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("http_request_upstream_calls_total"):
        ctx.not_measured["sequential_upstream"] = (
            "no http_request_upstream_* (no outbound call timed with UpstreamMetrics)"
        )
        return
    for route, calls in snap.upstream_calls.items():
        requests = snap.upstream_requests.get(route, 0.0)
        stats = ctx.main_method(route)
        if stats is None or requests < lim.min_requests:
            continue
        route_seconds = sum(s.seconds for s in ctx.by_route()[route])
        upstream_seconds = snap.upstream_seconds.get(route, 0.0)
        per_request = calls / requests
        overlap = upstream_seconds / route_seconds if route_seconds > 0 else 0.0
        if per_request < lim.upstream_calls or not (
            lim.upstream_share <= overlap <= lim.upstream_overlap
        ):
            continue
        yield Finding(
            route=route,
            method=stats.method,
            cause="sequential_upstream",
            severity=ctx.latency_severity(stats.duration),
            share_of_time=ctx.share(upstream_seconds),
            evidence={
                "calls_per_request": _r(per_request, 2),
                "upstream_ms_per_request": _ms(upstream_seconds / requests),
                "request_mean_ms": _ms(route_seconds / max(stats.requests, 1.0)),
                "call_time_over_request_time": _r(overlap, 3),
                "upstreams": {name: _ms(h.mean) for name, h in sorted(snap.upstreams.items())},
            },
        )


def _large_responses(ctx: _Context) -> Iterable[Finding]:
    snap, lim = ctx.snapshot, ctx.limits
    if not snap.has("http_response_size_bytes_count"):
        ctx.not_measured["large_responses"] = "no http_response_size_bytes (exporter too old)"
        return
    for stats in snap.routes:
        size = stats.response_size
        if size is None or size.count < lim.min_requests:
            continue
        mean = size.total / size.count
        if mean < lim.response_bytes:
            continue
        yield Finding(
            route=stats.route,
            method=stats.method,
            cause="large_responses",
            severity=ctx.latency_severity(stats.duration),
            share_of_time=ctx.share(stats.seconds),
            evidence={
                "mean_bytes": round(mean),
                "threshold_bytes": lim.response_bytes,
                "bytes_per_second": round(size.total / max(snap.window_seconds, 1e-9)),
                "p95_ms": _ms(stats.duration.quantile(0.95)),
            },
        )


def _errors(ctx: _Context) -> Iterable[Finding]:
    lim = ctx.limits
    for stats in ctx.snapshot.routes:
        if stats.requests < lim.min_requests or stats.errors <= 0:
            continue
        ratio = stats.errors / stats.requests
        if ratio < lim.error_floor:
            continue
        yield Finding(
            route=stats.route,
            method=stats.method,
            cause="errors",
            severity="critical" if ratio >= lim.error_rate else "warning",
            share_of_time=ctx.share(stats.seconds),
            evidence={
                "error_ratio": _r(ratio, 4),
                "errors": round(stats.errors),
                "requests": round(stats.requests),
                "threshold": lim.error_rate,
            },
        )


RULES: dict[str, Callable[[_Context], Iterable[Finding]]] = {
    "n_plus_one": _n_plus_one,
    "slow_queries": _slow_queries,
    "pool_exhaustion": _pool_exhaustion,
    "cache_misses": _cache_misses,
    "inline_side_work": _inline_side_work,
    "sequential_upstream": _sequential_upstream,
    "large_responses": _large_responses,
    "errors": _errors,
}


def judge(
    snapshot: Snapshot, limits: Limits, runbook: Callable[[str], str] | None = None
) -> tuple[list[Finding], dict[str, str]]:
    """Every finding of ``snapshot``, ranked (severity, then share of time), and the causes
    that could not be judged with the reason."""
    ctx = _Context(snapshot, limits)
    if not snapshot.exporter and not snapshot.routes:
        return [], {c: "no HLTHZ exporter metrics found" for c in CAUSES}
    findings: list[Finding] = []
    for cause, rule in RULES.items():
        for finding in rule(ctx):
            link = runbook(RUNBOOK_ALERTS[cause]) if runbook else ""
            findings.append(dataclasses.replace(finding, runbook=link))
    findings.sort(
        key=lambda f: (SEVERITIES.index(f.severity), -f.share_of_time, CAUSES.index(f.cause))
    )
    return findings, ctx.not_measured
