"""hlthz.exporter: Prometheus metrics for WSGI/ASGI apps, their database, caches and jobs.

``instrument(app)`` measures requests (``http_request_duration_seconds`` by route template,
in-flight requests, queries per request, N+1, response sizes), and for a Django handler every
ORM query, and serves ``/metrics``; the helpers below report the other databases, caches,
background jobs and outbound calls. Every name is in ``docs/exporter.md``.
"""

from hlthz.errors import ConfigError, MultiprocessError
from hlthz.exporter._metrics import (
    DEFAULT_MAX_SERIES_PER_METRIC,
    DEFAULT_QUERY_BUCKETS,
    DEFAULT_REQUEST_BUCKETS,
    OTHER_METHOD,
    OVERFLOW,
    UNMATCHED_ROUTE,
    Metrics,
)
from hlthz.exporter.cache import CacheMetrics
from hlthz.exporter.db import instrument_dbapi, instrument_sqlalchemy, query_name
from hlthz.exporter.exposition import metrics_app
from hlthz.exporter.instrument import instrument
from hlthz.exporter.jobs import JobMetrics
from hlthz.exporter.memory import memory_limit_bytes
from hlthz.exporter.upstream import UpstreamMetrics
from hlthz.routes import Routes, normalize_path

__all__ = [
    "DEFAULT_MAX_SERIES_PER_METRIC",
    "DEFAULT_QUERY_BUCKETS",
    "DEFAULT_REQUEST_BUCKETS",
    "OTHER_METHOD",
    "OVERFLOW",
    "UNMATCHED_ROUTE",
    "CacheMetrics",
    "ConfigError",
    "JobMetrics",
    "Metrics",
    "MultiprocessError",
    "Routes",
    "UpstreamMetrics",
    "instrument",
    "instrument_dbapi",
    "instrument_sqlalchemy",
    "memory_limit_bytes",
    "metrics_app",
    "normalize_path",
    "query_name",
]
