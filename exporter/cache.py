"""Cache metrics for any cache: ``cache_requests_total{cache, result}``, ``cache_errors_total``.

HLTHZ cannot see inside a dict, a ``cachetools`` cache or Redis, so the code that looks up the
cache reports the result::

    products_cache = CacheMetrics("products")
    value = cache.get(key)
    if value is None:
        products_cache.miss()
        value = cache[key] = load(key)
    else:
        products_cache.hit()

or lets :meth:`CacheMetrics.lookup` do it around a getter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError
from hlthz.exporter._metrics import Metrics

P = ParamSpec("P")
T = TypeVar("T")


class CacheMetrics:
    """Reports look-ups of the cache named ``cache`` (a fixed name: it is a label value)."""

    __slots__ = ("_error", "_hit", "_miss", "cache")

    def __init__(self, cache: str, *, registry: CollectorRegistry | None = None) -> None:
        if not isinstance(cache, str) or not cache:
            raise ConfigError(f"CacheMetrics needs a non-empty cache name, got {cache!r}")
        metrics = Metrics.for_registry(registry)
        self.cache = cache
        # Children bound once: hit() and miss() are a single locked add.
        self._hit = metrics.cache_requests.get((cache, "hit"))
        self._miss = metrics.cache_requests.get((cache, "miss"))
        self._error = metrics.cache_errors.get((cache,))

    def hit(self) -> None:
        """Count one look-up that found its value."""
        self._hit.inc()

    def miss(self) -> None:
        """Count one look-up that did not find its value."""
        self._miss.inc()

    def error(self) -> None:
        """Count one backend failure (timeout, connection refused); the caller served anyway."""
        self._error.inc()

    def record(self, found: bool) -> None:
        """Count one look-up: a hit when ``found``, else a miss."""
        (self._hit if found else self._miss).inc()

    def lookup(
        self, getter: Callable[P, T], *, missing: Any = None, swallow_errors: bool = False
    ) -> Callable[P, T]:
        """Wrap a cache getter: a result equal to ``missing`` is a miss, anything else a hit.

        An exception from the getter counts as an error (not a miss) and is re-raised, or, with
        ``swallow_errors=True``, turned into ``missing`` so the caller falls back to the source
        (``cache_errors_total`` then says the cache is failing while requests still succeed).
        Usable as a decorator: ``@products_cache.lookup``.
        """

        @functools.wraps(getter)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                value = getter(*args, **kwargs)
            except Exception:
                self._error.inc()
                if swallow_errors:
                    return missing
                raise
            (self._miss if value is missing or value == missing else self._hit).inc()
            return value

        return wrapper
