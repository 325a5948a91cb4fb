"""Outbound call timing: ``upstream_request_duration_seconds`` and the per-request totals.

HLTHZ cannot see an HTTP client's calls, so the code that calls another service times them::

    customers = UpstreamMetrics("customers")
    with customers.call():
        profile = client.get(f"/customers/{user_id}")

Each call is observed in ``upstream_request_duration_seconds{upstream}``. A call made while
serving an instrumented request also counts for that request: when the request ends, its calls
(``http_request_upstream_calls_total{route}``) and their added-up time
(``http_request_upstream_seconds{route}``) are recorded under its route. Added-up call time
close to the request's own duration means the calls ran one after another; well above it, they
overlapped (``hlthz diagnose`` reads it so, see docs/diagnose.md).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError
from hlthz.exporter._context import current_request
from hlthz.exporter._metrics import Metrics

P = ParamSpec("P")
T = TypeVar("T")

# Calls of one request may run on several threads (a thread pool sharing the request's
# context); the two per-request totals are updated under this lock so none is lost.
_totals_lock = threading.Lock()


class UpstreamMetrics:
    """Times calls to the upstream service named ``upstream`` (a fixed name: a label value)."""

    __slots__ = ("_observe", "upstream")

    def __init__(self, upstream: str, *, registry: CollectorRegistry | None = None) -> None:
        if not isinstance(upstream, str) or not upstream:
            raise ConfigError(f"UpstreamMetrics needs a non-empty upstream name, got {upstream!r}")
        self.upstream = upstream
        self._observe = Metrics.for_registry(registry).upstream_duration.observer((upstream,))

    def observe(self, seconds: float) -> None:
        """Count one call that took ``seconds`` (for the current request too, if any)."""
        self._observe(seconds)
        state = current_request.get()
        if state is not None:
            with _totals_lock:
                state.upstream_calls += 1
                state.upstream_seconds += seconds

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Time the block as one call, whether it returns or raises."""
        start = perf_counter()
        try:
            yield
        finally:
            self.observe(perf_counter() - start)

    def timed(self, function: Callable[P, T]) -> Callable[P, T]:
        """Wrap ``function`` so each call of it is timed as one upstream call (a decorator)."""

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.call():
                return function(*args, **kwargs)

        return wrapper
