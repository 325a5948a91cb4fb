"""Which metric families an app emits (``signals``), read from its ``/metrics``.

An app instrumented with ``hlthz.exporter`` always has request and process metrics; the
database, pool, cache and job families have samples only once the app uses them (the exporter
registers every family up front, so a family's ``# TYPE`` line alone proves nothing). The same
series names tell ``hlthz dashboards check`` whether a panel is empty because the app does not
emit its family or because its query is broken.
"""

from __future__ import annotations

import re

from hlthz.alerts.config import SIGNALS
from hlthz.errors import UsageError
from hlthz.metrics_page import read_metrics_page

#: Series whose presence proves a signal (one is enough).
SIGNAL_SERIES: dict[str, tuple[str, ...]] = {
    "database": ("database_query_duration_seconds_count",),
    "pool": ("db_pool_connections_max", "db_pool_connections_in_use"),
    "cache": ("cache_requests_total",),
    "jobs": ("jobs_total", "job_queue_depth", "job_duration_seconds_count"),
}
#: Metric names a query reads when it belongs to a signal's family.
SIGNAL_METRICS: dict[str, re.Pattern[str]] = {
    "database": re.compile(
        r"\b(database_query_duration_seconds|http_request_database_queries|"
        r"database_n_plus_one_total)"
    ),
    "pool": re.compile(r"\bdb_pool_\w+"),
    "cache": re.compile(r"\bcache_(requests|errors)_total\b"),
    "jobs": re.compile(r"\b(job_queue_depth\b|job_duration_seconds|jobs_total\b)"),
}
_REQUESTS = "http_request_duration_seconds"


def signal_of(expr: str) -> str | None:
    """The signal whose family ``expr`` reads, if any."""
    for signal, pattern in SIGNAL_METRICS.items():
        if pattern.search(expr):
            return signal
    return None


def signals_in(text: str) -> tuple[str, ...]:
    """The signals with samples in a Prometheus text exposition ``text``, in SIGNALS order."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return tuple(s for s in SIGNALS if any(series in names for series in SIGNAL_SERIES[s]))


def detect_signals(url: str, *, timeout: float = 10.0) -> tuple[str, ...]:
    """Read ``url`` (an app's metrics page) and return the signals it has samples of.

    :class:`~hlthz.errors.ScrapeError` when the page cannot be read, :class:`UsageError` when
    it is not an instrumented app's.
    """
    text = read_metrics_page(url, what="--from-metrics", timeout=timeout)
    if not re.search(rf"^(# TYPE {_REQUESTS} |{_REQUESTS}_)", text, re.M):
        raise UsageError(
            f"--from-metrics {url}: no {_REQUESTS} metric; is the app instrumented with "
            "hlthz.exporter (docs/exporter.md)?"
        )
    return signals_in(text)
