"""What the WSGI and ASGI middleware share: options, and recording one finished request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from hlthz.errors import ConfigError
from hlthz.exporter._context import RequestState
from hlthz.exporter._metrics import METHODS, OTHER_METHOD, UNMATCHED_ROUTE, Metrics, fast_inc
from hlthz.exporter.exposition import Exposition

logger = logging.getLogger("hlthz.exporter")

#: Maps a raw path to a route template (bare callables only; frameworks know their templates).
PathNormalizer = Callable[[str], str]

DEFAULT_N_PLUS_ONE_THRESHOLD = 5
_MAX_WARNED = 1000  # distinct (route, shape) pairs warned about once each, then silence


class Recorder:
    """Options of one instrumented app and the code that records a finished request.

    Both middleware hold one and call :meth:`finish` once per request; everything in it is
    wrapped so that a failure in HLTHZ is counted, never raised into the application.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        metrics_path: str | None,
        exposition: Exposition | None,
        exclude_paths: Iterable[str],
        n_plus_one_threshold: int,
        normalize_paths: bool | PathNormalizer,
        measure_metrics: bool = False,
    ) -> None:
        if not isinstance(n_plus_one_threshold, int) or n_plus_one_threshold < 2:
            raise ConfigError(
                f"n_plus_one_threshold must be an integer >= 2, got {n_plus_one_threshold!r}"
            )
        if metrics_path is not None and not metrics_path.startswith("/"):
            raise ConfigError(f"metrics_path must start with '/', got {metrics_path!r}")
        excluded = set()
        for path in exclude_paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(
                    f"exclude_paths entries must be paths starting with '/': {path!r}"
                )
            excluded.add(path)
        if metrics_path is not None and not measure_metrics:
            excluded.add(metrics_path)
        self.metrics = metrics
        self.metrics_path = metrics_path
        #: Scrapes of ``metrics_path`` are measured like requests (route = the path).
        self.measure_metrics = bool(measure_metrics and metrics_path and exposition)
        self.exposition = exposition
        #: Paths answered without being measured (``/metrics`` included).
        self.skip = frozenset(excluded)
        self.threshold = n_plus_one_threshold
        self.normalizer: PathNormalizer | None
        if normalize_paths is True:
            from hlthz.routes import normalize_path

            self.normalizer = normalize_path
        elif callable(normalize_paths):
            self.normalizer = normalize_paths
        else:
            self.normalizer = None
        # In-flight ``inc`` per method label, bound up front: no lookup cost per request.
        self.in_flight = {
            m: fast_inc(metrics.in_flight.get((m,))) for m in (*METHODS, OTHER_METHOD)
        }
        self.durations = metrics.request_duration
        self.queries = metrics.request_queries
        self._duration_observers = metrics.request_duration.observers
        self._query_observers = metrics.request_queries.observers
        self._db_seconds_incs: dict[str, Callable[[float], None]] = {}
        self.sizes = metrics.response_size
        self._size_observers = metrics.response_size.observers
        self.internal_errors = metrics.internal_errors
        self._warned: set[tuple[str, str]] = set()

    def fallback_route(self, path: str) -> str:
        """Route of a request no framework hook named: normalized path, or ``_unmatched``."""
        if self.normalizer is None:
            return UNMATCHED_ROUTE
        try:
            return self.normalizer(path)
        except Exception:
            self.internal_errors.inc()
            return UNMATCHED_ROUTE

    def finish(
        self, method: str, route: str, status: str, duration: float, state: RequestState
    ) -> None:
        """Record one finished request (never raises)."""
        try:
            key = (method, route, status)
            observe = self._duration_observers.get(key)
            if observe is None:
                observe = self.durations.observer(key)
            observe(duration)
            observe = self._query_observers.get((route,))
            if observe is None:
                observe = self.queries.observer((route,))
            observe(state.queries)
            if state.queries:
                self._db_seconds(route, state.query_seconds)
            observe = self._size_observers.get(key[:2])
            if observe is None:
                observe = self.sizes.observer(key[:2])
            observe(state.response_bytes)
            if state.upstream_calls:
                self._upstream(route, state)
            if state.flagged:
                self._flag(route, state.flagged)
        except Exception:
            self.internal_errors.inc()
            logger.exception("hlthz: failed to record a request; the response was not affected")

    def _db_seconds(self, route: str, seconds: float) -> None:
        inc = self._db_seconds_incs.get(route)
        if inc is None:
            child = self.metrics.request_db_seconds.get((route,))
            inc = fast_inc(child)
            if (route,) in self.metrics.request_db_seconds.children:
                self._db_seconds_incs[route] = inc
        inc(seconds)

    def _upstream(self, route: str, state: RequestState) -> None:
        self.metrics.request_upstream.observer((route,))(state.upstream_seconds)
        self.metrics.upstream_calls.get((route,)).inc(state.upstream_calls)

    def _flag(self, route: str, flagged: list[tuple[str, str]]) -> None:
        # The counter counts requests: two shapes of one query_type in a request count once.
        for query_type in dict.fromkeys(query_type for query_type, _ in flagged):
            self.metrics.n_plus_one.get((route, query_type)).inc()
        for _, shape in flagged:
            pair = (route, shape)
            if pair not in self._warned and len(self._warned) < _MAX_WARNED:
                self._warned.add(pair)
                logger.warning(
                    "N+1 queries on route %s: the statement %r ran %d+ times in one request; "
                    "load the rows in one query (a JOIN, IN (...) or eager loading)",
                    route,
                    shape,
                    self.threshold,
                )


#: ASGI status -> label value; statuses outside 100-599 are not in it (they become ``_OTHER``).
STATUS_LABELS: dict[int, str] = {code: str(code) for code in range(100, 600)}
