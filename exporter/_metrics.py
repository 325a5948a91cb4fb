"""The metrics of docs/metrics.md in one registry, with label children cached and capped.

Everything HLTHZ measures goes through :class:`Metrics`: one bundle per registry, created on
first use, so the middleware, the database hooks and the cache/job helpers of one application
share the same metric objects. Each labelled metric is wrapped in a :class:`Family` that caches
its label children (``metric.labels(...)`` costs microseconds; a dict lookup does not) and caps
how many distinct label sets it will create: past the cap, the free labels are folded into
``_overflow`` and ``hlthz_exporter_series_folded_total`` counts the folded observations.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from hlthz.errors import ConfigError

#: Request duration buckets (seconds): the seed's 0.1/0.5/1/2/5 plus six below 100 ms.
DEFAULT_REQUEST_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
#: Database query duration buckets (seconds), down to 0.5 ms.
DEFAULT_QUERY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
#: Queries issued while serving one request. ``le="0"`` counts requests without a query.
DEFAULT_QUERIES_PER_REQUEST_BUCKETS: tuple[float, ...] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200)
#: Background job duration buckets (seconds).
DEFAULT_JOB_BUCKETS: tuple[float, ...] = (
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
#: Response body sizes (bytes, as sent: after compression): 256 B to 4 MiB.
DEFAULT_RESPONSE_SIZE_BUCKETS: tuple[float, ...] = (
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
)
#: Distinct label sets one metric may create before new ones are folded into ``_overflow``.
DEFAULT_MAX_SERIES_PER_METRIC = 1000

#: ``route`` of every request that matched no route of the application.
UNMATCHED_ROUTE = "_unmatched"
#: Value a label takes when its metric reached ``max_series_per_metric``.
OVERFLOW = "_overflow"
#: ``method`` of a request whose HTTP method is not a standard one.
OTHER_METHOD = "_OTHER"

_STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
#: Raw method -> label value; anything else is ``_OTHER`` (one dict lookup on the hot path).
METHODS: dict[str, str] = {m: m for m in _STANDARD_METHODS}


class Family:
    """The label children of one labelled metric, cached by label values and capped.

    ``get(labels)`` returns the child for a tuple of label values. The first ``max_series``
    distinct tuples get their own child; later ones have the labels at ``fold`` positions
    replaced by ``_overflow`` (the other labels, bounded by construction, are kept so error
    rates stay computable) and are counted in ``hlthz_exporter_series_folded_total``.
    """

    __slots__ = (
        "_folded",
        "_lock",
        "_overflow",
        "children",
        "fold",
        "max_series",
        "metric",
        "observers",
    )

    def __init__(self, metric: Any, *, max_series: int, fold: Iterable[int], folded: Any) -> None:
        self.metric = metric
        self.max_series = max_series
        self.fold = frozenset(fold)
        self.children: dict[tuple[str, ...], Any] = {}
        self._overflow: dict[tuple[str, ...], Any] = {}
        #: Fast ``observe`` functions of histogram children, by label values.
        self.observers: dict[tuple[str, ...], Callable[[float], None]] = {}
        self._folded = folded
        self._lock = threading.Lock()

    def get(self, labels: tuple[str, ...]) -> Any:
        """The child for ``labels`` (created on first use, folded past the cap)."""
        child = self.children.get(labels)
        if child is None:
            child = self._create(labels)
        return child

    def observer(self, labels: tuple[str, ...]) -> Callable[[float], None]:
        """A fast ``observe`` of the histogram child for ``labels`` (see :func:`fast_observe`)."""
        observe = self.observers.get(labels)
        if observe is None:
            child = self.get(labels)
            observe = fast_observe(child)
            if labels in self.children:  # folded label sets are not cached: they are unbounded
                self.observers[labels] = observe
        return observe

    def _create(self, labels: tuple[str, ...]) -> Any:
        with self._lock:
            child = self.children.get(labels)
            if child is not None:
                return child
            if len(self.children) < self.max_series:
                child = self.metric.labels(*labels)
                self.children[labels] = child
                return child
            self._folded.inc()
            folded = tuple(OVERFLOW if i in self.fold else v for i, v in enumerate(labels))
            child = self._overflow.get(folded)
            if child is None:
                child = self._overflow[folded] = self.metric.labels(*folded)
            return child


def fast_observe(child: Any) -> Callable[[float], None]:
    """``child.observe`` without its per-call checks and Python loop over the buckets.

    prometheus-client's ``Histogram.observe`` re-checks the child and walks the buckets in
    Python; this binds the child's value objects once and finds the bucket with ``bisect``
    (C). Same values, same locks (and the same mmap files in multiprocess mode). Falls back
    to ``child.observe`` if prometheus-client's internals ever change shape.
    """
    try:
        sum_inc = child._sum.inc
        bucket_incs = [bucket.inc for bucket in child._buckets]
        bounds = [float(bound) for bound in child._upper_bounds]
    except (AttributeError, TypeError):
        return child.observe
    if len(bounds) != len(bucket_incs) or bounds[-1] != math.inf:
        return child.observe

    def observe(amount: float) -> None:
        sum_inc(amount)
        bucket_incs[bisect_left(bounds, amount)](1)

    return observe


def fast_inc(child: Any) -> Callable[[float], None]:
    """``child.inc`` of a gauge/counter without its per-call checks (``inc(-1)`` decrements)."""
    try:
        return child._value.inc
    except AttributeError:
        return child.inc


class Metrics:
    """The exporter metrics (docs/metrics.md) registered in one registry.

    Get it with :meth:`for_registry`; never construct it twice for a registry (prometheus-client
    would refuse the duplicate names).
    """

    _bundles: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()
    _bundles_lock = threading.Lock()

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        request_buckets: Sequence[float] = DEFAULT_REQUEST_BUCKETS,
        query_buckets: Sequence[float] = DEFAULT_QUERY_BUCKETS,
        max_series_per_metric: int = DEFAULT_MAX_SERIES_PER_METRIC,
        process_metrics: bool = True,
    ) -> None:
        # Weak: the bundle is the value of a WeakKeyDictionary keyed by this registry, and a
        # strong reference back would keep every registry (and its bundle) alive forever.
        self._registry = weakref.ref(registry)
        self.request_buckets = tuple(float(b) for b in request_buckets)
        self.query_buckets = tuple(float(b) for b in query_buckets)
        self.max_series_per_metric = max_series_per_metric
        r = registry

        self.series_folded = Counter(
            "hlthz_exporter_series_folded",
            "Observations whose labels were folded into _overflow by the series cap.",
            ["metric"],
            registry=r,
        )
        self.internal_errors = Counter(
            "hlthz_exporter_internal_errors",
            "Exceptions raised inside HLTHZ's instrumentation (never passed to the app).",
            registry=r,
        )

        def family(metric: Any, fold: Iterable[int]) -> Family:
            folded = self.series_folded.labels(metric._name)
            return Family(metric, max_series=max_series_per_metric, fold=fold, folded=folded)

        self.request_duration = family(
            Histogram(
                "http_request_duration_seconds",
                "Server-side request duration, to the last byte of the response.",
                ["method", "route", "status_code"],
                buckets=self.request_buckets,
                registry=r,
            ),
            fold=(1,),
        )
        self.response_size = family(
            Histogram(
                "http_response_size_bytes",
                "Response body bytes sent for one request (after compression).",
                ["method", "route"],
                buckets=DEFAULT_RESPONSE_SIZE_BUCKETS,
                registry=r,
            ),
            fold=(1,),
        )
        self.request_upstream = family(
            Histogram(
                "http_request_upstream_seconds",
                "Time of the outbound calls made while serving one request, added up.",
                ["route"],
                buckets=self.request_buckets,
                registry=r,
            ),
            fold=(0,),
        )
        self.upstream_calls = family(
            Counter(
                "http_request_upstream_calls",
                "Outbound calls made while serving requests.",
                ["route"],
                registry=r,
            ),
            fold=(0,),
        )
        self.upstream_duration = family(
            Histogram(
                "upstream_request_duration_seconds",
                "Duration of one outbound call to an upstream service.",
                ["upstream"],
                buckets=self.request_buckets,
                registry=r,
            ),
            fold=(0,),
        )
        self.in_flight = family(
            Gauge(
                "http_requests_in_flight",
                "Requests being served.",
                ["method"],
                multiprocess_mode="livesum",
                registry=r,
            ),
            fold=(0,),
        )
        self.request_queries = family(
            Histogram(
                "http_request_database_queries",
                "Database queries issued while serving one request.",
                ["route"],
                buckets=DEFAULT_QUERIES_PER_REQUEST_BUCKETS,
                registry=r,
            ),
            fold=(0,),
        )
        self.request_db_seconds = family(
            Counter(
                "http_request_database_seconds",
                "Seconds spent in database queries while serving requests.",
                ["route"],
                registry=r,
            ),
            fold=(0,),
        )
        self.query_duration = family(
            Histogram(
                "database_query_duration_seconds",
                "Duration of one database query.",
                ["query_type"],
                buckets=self.query_buckets,
                registry=r,
            ),
            fold=(0,),
        )
        self.n_plus_one = family(
            Counter(
                "database_n_plus_one",
                "Requests in which one query shape repeated at least N times.",
                ["route", "query_type"],
                registry=r,
            ),
            fold=(0, 1),
        )
        self.pool_in_use = family(
            Gauge(
                "db_pool_connections_in_use",
                "Connections checked out of the pool.",
                ["pool"],
                multiprocess_mode="livesum",
                registry=r,
            ),
            fold=(0,),
        )
        self.pool_max = family(
            Gauge(
                "db_pool_connections_max",
                "Pool capacity (size + overflow).",
                ["pool"],
                multiprocess_mode="livesum",
                registry=r,
            ),
            fold=(0,),
        )
        self.pool_pending = family(
            Gauge(
                "db_pool_pending_acquires",
                "Callers waiting for a pool connection.",
                ["pool"],
                multiprocess_mode="livesum",
                registry=r,
            ),
            fold=(0,),
        )
        self.pool_timeouts = family(
            Counter(
                "db_pool_acquire_timeouts",
                "Connection acquisitions that timed out.",
                ["pool"],
                registry=r,
            ),
            fold=(0,),
        )
        self.pool_waits = family(
            Counter(
                "db_pool_acquire_waits",
                "Connection acquisitions that had to wait (no idle connection, no room).",
                ["pool"],
                registry=r,
            ),
            fold=(0,),
        )
        self.cache_requests = family(
            Counter(
                "cache_requests",
                "Cache look-ups by result (hit or miss).",
                ["cache", "result"],
                registry=r,
            ),
            fold=(0,),
        )
        self.cache_errors = family(
            Counter(
                "cache_errors",
                "Cache backend failures (the request was still served).",
                ["cache"],
                registry=r,
            ),
            fold=(0,),
        )
        self.job_queue_depth = family(
            Gauge(
                "job_queue_depth",
                "Jobs waiting in the queue.",
                ["queue"],
                multiprocess_mode="livemostrecent",
                registry=r,
            ),
            fold=(0,),
        )
        self.job_duration = family(
            Histogram(
                "job_duration_seconds",
                "Duration of one background job.",
                ["queue", "job"],
                buckets=DEFAULT_JOB_BUCKETS,
                registry=r,
            ),
            fold=(1,),
        )
        self.jobs = family(
            Counter(
                "jobs",
                "Finished background jobs by outcome (success, failure, retry).",
                ["queue", "job", "outcome"],
                registry=r,
            ),
            fold=(1,),
        )

        from hlthz.exporter.memory import MemoryLimitCollector

        _register_once(r, MemoryLimitCollector())
        if process_metrics and r is not REGISTRY:
            # The default registry has prometheus-client's process collector already.
            _register_once(r, ProcessCollector(registry=None))

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are registered in."""
        registry = self._registry()
        if registry is None:  # pragma: no cover - only reachable through a leaked bundle
            raise ConfigError("the registry of these metrics no longer exists")
        return registry

    @classmethod
    def for_registry(
        cls,
        registry: CollectorRegistry | None = None,
        *,
        request_buckets: Sequence[float] | None = None,
        query_buckets: Sequence[float] | None = None,
        max_series_per_metric: int | None = None,
    ) -> Metrics:
        """The bundle of ``registry`` (default: prometheus-client's ``REGISTRY``).

        Created on first use with the given options; a later call may pass the same options or
        none, and raises :class:`ConfigError` if they differ from the bundle's.
        """
        reg = REGISTRY if registry is None else registry
        with cls._bundles_lock:
            bundle = cls._bundles.get(reg)
            if bundle is None:
                bundle = cls(
                    reg,
                    request_buckets=_check_buckets("request_buckets", request_buckets)
                    or DEFAULT_REQUEST_BUCKETS,
                    query_buckets=_check_buckets("query_buckets", query_buckets)
                    or DEFAULT_QUERY_BUCKETS,
                    max_series_per_metric=_check_max_series(max_series_per_metric),
                )
                cls._bundles[reg] = bundle
                return bundle
        _check_same("request_buckets", request_buckets, bundle.request_buckets)
        _check_same("query_buckets", query_buckets, bundle.query_buckets)
        if (
            max_series_per_metric is not None
            and max_series_per_metric != bundle.max_series_per_metric
        ):
            raise ConfigError(
                f"max_series_per_metric={max_series_per_metric} conflicts with "
                f"{bundle.max_series_per_metric}, already used for this registry; pass the same "
                "value everywhere or use a separate registry"
            )
        return bundle


def _check_buckets(option: str, buckets: Sequence[float] | None) -> tuple[float, ...] | None:
    if buckets is None:
        return None
    try:
        values = tuple(float(b) for b in buckets)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a list of numbers, got {buckets!r}") from None
    if not values or any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"{option} must be non-empty and increasing, got {list(values)}")
    return values


def _check_max_series(value: int | None) -> int:
    if value is None:
        return DEFAULT_MAX_SERIES_PER_METRIC
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"max_series_per_metric must be a positive integer, got {value!r}")
    return value


def _check_same(option: str, given: Sequence[float] | None, current: tuple[float, ...]) -> None:
    if given is None:
        return
    values = _check_buckets(option, given)
    if values != current:
        raise ConfigError(
            f"{option}={list(given)} conflicts with {list(current)}, already used for this "
            "registry; pass the same buckets everywhere or use a separate registry"
        )


def _register_once(registry: CollectorRegistry, collector: Any) -> None:
    # ValueError: another part of the application registered the same series already.
    with contextlib.suppress(ValueError):
        registry.register(collector)
