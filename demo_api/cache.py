"""The response cache behind the ``cache`` switch: in-process TTL, or Redis when configured.

Entries are JSON documents stored under a key with a TTL and a set of *tags*. An update
invalidates by tag (``product:42``, ``category:3``, ``featured``), which deletes every entry that
showed the changed product: its detail, its category's listing pages, the featured (unfiltered)
listing. A failing Redis never fails a request: the look-up counts as a cache error
(``cache_errors_total``) and the caller reads the database instead.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, Protocol

import cachetools

from hlthz.demo_api.instrumentation import CacheMetricsLike

log = logging.getLogger(__name__)

_KEY_PREFIX = "hlthz:demo:"
_GENERATION_KEY = _KEY_PREFIX + "generation"


#: Tags of an entry: given up front, or computed from the loaded document.
Tags = Iterable[str] | Callable[[Any], Iterable[str]]


#: ``hit``, ``miss`` or ``error``: the last look-up in this context (the ``X-Cache`` header).
last_lookup: ContextVar[str | None] = ContextVar("hlthz_demo_last_cache_lookup", default=None)


class _CacheBackendError(Exception):
    """The cache back end failed; the caller falls back to the database."""


class CacheBackend(Protocol):
    """Bytes under keys, with a TTL and tags to invalidate by.

    Every invalidation bumps a *generation*. ``set`` stores only if the generation is still the
    one read before the value was loaded: a reader that loaded old rows while an update
    committed and invalidated cannot put them back into the cache afterwards.
    """

    def get(self, key: str) -> bytes | None: ...

    def generation(self) -> int: ...

    def set(
        self, key: str, value: bytes, ttl: float, tags: Iterable[str], generation: int
    ) -> bool: ...

    def invalidate(self, tags: Iterable[str]) -> int: ...

    def close(self) -> None: ...


class MemoryBackend:
    """A thread-safe in-process TTL cache (one per worker process)."""

    def __init__(self, ttl: float, maxsize: int = 20_000) -> None:
        self._entries: cachetools.TTLCache[str, bytes] = cachetools.TTLCache(maxsize, ttl)
        self._tags: dict[str, set[str]] = {}
        # Tag memberships recorded since the tags were last pruned of expired/evicted keys:
        # without pruning, every key ever stored (each page of each category) stays listed.
        self._memberships = 0
        self._max_memberships = 4 * maxsize
        self._generation = 0
        # TTLCache is not thread-safe and FastAPI serves sync routes from a thread pool.
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._entries.get(key)

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str], generation: int) -> bool:
        with self._lock:
            if generation != self._generation:
                return False
            self._entries[key] = value
            for tag in tags:
                self._tags.setdefault(tag, set()).add(key)
                self._memberships += 1
            if self._memberships > self._max_memberships:
                self._prune_tags()
            return True

    def _prune_tags(self) -> None:
        """Drop tag memberships of keys that expired or were evicted (lock held)."""
        self._entries.expire()
        live = self._entries
        pruned = {tag: {k for k in keys if k in live} for tag, keys in self._tags.items()}
        self._tags = {tag: keys for tag, keys in pruned.items() if keys}
        self._memberships = sum(len(keys) for keys in self._tags.values())
        # Live entries alone may exceed the budget (many tags each): never prune in a loop.
        self._max_memberships = max(self._max_memberships, 2 * self._memberships)

    def invalidate(self, tags: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            self._generation += 1
            for tag in tags:
                for key in self._tags.pop(tag, ()):
                    if self._entries.pop(key, None) is not None:
                        removed += 1
        return removed

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._tags.clear()


class RedisBackend:
    """Redis: ``SET key PX ttl`` plus one Redis set per tag listing the keys to delete."""

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        import redis

        self._redis_error = redis.RedisError
        self._watch_error = redis.WatchError
        # Short timeouts: a sick Redis must cost a request milliseconds, not seconds.
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )

    def get(self, key: str) -> bytes | None:
        try:
            value = self._client.get(_KEY_PREFIX + key)
        except self._redis_error as error:
            raise _CacheBackendError(str(error)) from error
        return value if isinstance(value, bytes) else None

    def generation(self) -> int:
        try:
            return int(self._client.get(_GENERATION_KEY) or 0)
        except self._redis_error as error:
            raise _CacheBackendError(str(error)) from error

    def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str], generation: int) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        try:
            with self._client.pipeline(transaction=True) as pipe:
                # WATCH + MULTI: the write is dropped if an invalidation ran in between.
                pipe.watch(_GENERATION_KEY)
                if int(pipe.get(_GENERATION_KEY) or 0) != generation:
                    return False
                pipe.multi()
                pipe.set(_KEY_PREFIX + key, value, px=ttl_ms)
                for tag in tags:
                    tag_key = f"{_KEY_PREFIX}tag:{tag}"
                    pipe.sadd(tag_key, _KEY_PREFIX + key)
                    # The tag outlives its newest member, never the other way round.
                    pipe.pexpire(tag_key, ttl_ms + 1000)
                pipe.execute()
                return True
        except self._watch_error:
            return False
        except self._redis_error as error:
            raise _CacheBackendError(str(error)) from error

    def invalidate(self, tags: Iterable[str]) -> int:
        tag_keys = [f"{_KEY_PREFIX}tag:{tag}" for tag in tags]
        try:
            # Bump first: loads already running can no longer store what they read.
            self._client.incr(_GENERATION_KEY)
            pipe = self._client.pipeline(transaction=False)
            for tag_key in tag_keys:
                pipe.smembers(tag_key)
            members: set[bytes] = set().union(*pipe.execute()) if tag_keys else set()
            removed = int(self._client.delete(*members)) if members else 0
            if tag_keys:
                self._client.delete(*tag_keys)
        except self._redis_error as error:
            raise _CacheBackendError(str(error)) from error
        return removed

    def close(self) -> None:
        self._client.close()


class ResponseCache:
    """JSON documents in a :class:`CacheBackend`, with metrics and the cache-bypass fault.

    ``get_or_load(key, tags, loader)`` returns the cached document or calls ``loader`` and stores
    its result. ``bypass`` (a callable, the fault switch) turns every look-up into a miss.
    """

    def __init__(
        self,
        backend: CacheBackend,
        metrics: CacheMetricsLike,
        *,
        ttl: float,
        bypass: Callable[[], bool] = lambda: False,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.ttl = ttl
        self._bypass = bypass

    def get_or_load(self, key: str, tags: Tags, loader: Callable[[], Any]) -> Any:
        """The document under ``key``, loading and storing it (with ``tags``) on a miss.

        ``tags`` may be a function of the loaded document (tags that depend on its content).
        """
        if self._bypass():
            self.metrics.miss()
            last_lookup.set("miss")
            return loader()
        try:
            raw = self.backend.get(key)
        except _CacheBackendError as error:
            self.metrics.error()
            last_lookup.set("error")
            log.warning("cache read failed, serving from the database: %s", error)
            return loader()
        if raw is not None:
            self.metrics.hit()
            last_lookup.set("hit")
            return json.loads(raw)
        self.metrics.miss()
        last_lookup.set("miss")
        try:
            generation = self.backend.generation()
        except _CacheBackendError as error:
            self.metrics.error()
            log.warning("cache read failed, serving from the database: %s", error)
            return loader()
        value = loader()
        entry_tags = tags(value) if callable(tags) else tags
        try:
            data = json.dumps(value, separators=(",", ":")).encode()
            self.backend.set(key, data, self.ttl, entry_tags, generation)
        except _CacheBackendError as error:
            self.metrics.error()
            log.warning("cache write failed: %s", error)
        return value

    def invalidate(self, tags: Iterable[str]) -> None:
        """Delete every entry stored with one of ``tags``."""
        try:
            self.backend.invalidate(list(tags))
        except _CacheBackendError as error:
            # Entries written before the outage expire with their TTL.
            self.metrics.error()
            log.warning("cache invalidation failed: %s", error)

    def close(self) -> None:
        self.backend.close()


def make_backend(url: str | None, ttl: float) -> CacheBackend:
    """The in-process backend for ``None``, Redis for a ``redis://`` or ``rediss://`` URL."""
    if url is None:
        return MemoryBackend(ttl)
    return RedisBackend(url)
