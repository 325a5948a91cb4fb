"""The demo API's single doorway to :mod:`hlthz.exporter`.

Every metric the demo shows (requests, queries per request, N+1, pool, cache, jobs, upstream
calls, response sizes) comes from
the exporter; this module only names the demo's caches, queues and pool and hands the exporter
one registry per app. Keeping the calls here means the rest of the package depends on two small
protocols, not on the exporter's classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

#: Label values the demo uses.
CACHE_NAME = "demo_products"
QUEUE_NAME = "demo_orders"
POOL_NAME = "demo"
UPSTREAM_NAME = "demo_customers"


class CacheMetricsLike(Protocol):
    """What the cache reports: ``hit``, ``miss``, ``error`` (``CacheMetrics`` of the exporter)."""

    def hit(self) -> None: ...

    def miss(self) -> None: ...

    def error(self) -> None: ...


class JobMetricsLike(Protocol):
    """What the job runners report (``JobMetrics`` of the exporter)."""

    def set_depth(self, depth: float) -> None: ...

    def success(self, job: str, duration: float) -> None: ...

    def failure(self, job: str, duration: float) -> None: ...

    def retry(self, job: str) -> None: ...


def cache_metrics(registry: CollectorRegistry | None) -> CacheMetricsLike:
    """``cache_requests_total`` / ``cache_errors_total`` for the demo's product cache."""
    from hlthz.exporter import CacheMetrics

    metrics: CacheMetricsLike = CacheMetrics(CACHE_NAME, registry=registry)
    return metrics


def job_metrics(registry: CollectorRegistry | None) -> JobMetricsLike:
    """``job_queue_depth`` / ``job_duration_seconds`` / ``jobs_total`` for the order queue."""
    from hlthz.exporter import JobMetrics

    metrics: JobMetricsLike = JobMetrics(QUEUE_NAME, registry=registry)
    return metrics


class UpstreamMetricsLike(Protocol):
    """What the upstream client reports (``UpstreamMetrics`` of the exporter)."""

    def call(self) -> contextlib.AbstractContextManager[None]: ...


def upstream_metrics(registry: CollectorRegistry | None) -> UpstreamMetricsLike:
    """``upstream_request_duration_seconds`` and the per-request upstream totals."""
    from hlthz.exporter import UpstreamMetrics

    metrics: UpstreamMetricsLike = UpstreamMetrics(UPSTREAM_NAME, registry=registry)
    return metrics


def instrument_app(app: Any, registry: CollectorRegistry | None, n_plus_one: int) -> Any:
    """Request metrics and ``/metrics`` on ``app`` (returns what to serve)."""
    from hlthz.exporter import instrument

    return instrument(app, registry=registry, n_plus_one_threshold=n_plus_one)


def instrument_engine(engine: Any, registry: CollectorRegistry | None) -> None:
    """Query timing, queries per request, N+1 detection and pool gauges for ``engine``."""
    from hlthz.exporter import instrument_sqlalchemy

    instrument_sqlalchemy(engine, registry=registry, pool=POOL_NAME)


@contextlib.contextmanager
def named_query(name: str) -> Iterator[None]:
    """Give the statements run inside an explicit, bounded ``query_type``."""
    from hlthz.exporter import query_name

    with query_name(name):
        yield
