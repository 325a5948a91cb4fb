"""Database metrics: query timing, queries per request, N+1 detection, pool gauges.

Every query, from SQLAlchemy (:func:`instrument_sqlalchemy`) or a raw DB-API connection
(:func:`instrument_dbapi`), is timed into ``database_query_duration_seconds{query_type}`` and,
inside an instrumented request, counted into that request's state: the middleware then
observes ``http_request_database_queries{route}`` and, when one statement shape ran at least
``n_plus_one_threshold`` times, increments ``database_n_plus_one_total{route, query_type}`` and
logs one warning per route and shape.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError
from hlthz.exporter._context import current_query_name, current_request
from hlthz.exporter._metrics import Metrics
from hlthz.exporter._sql import analyze

_START_KEY = "_hlthz_query_starts"


@contextlib.contextmanager
def query_name(name: str) -> Iterator[None]:
    """Name the statements run inside the block: ``with query_name("product_page"): ...``.

    The name becomes their ``query_type`` (instead of the derived verb and table). Keep names
    few and fixed: they are label values.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"query_name needs a non-empty string, got {name!r}")
    token = current_query_name.set(name)
    try:
        yield
    finally:
        current_query_name.reset(token)


class QueryRecorder:
    """Times one query into the metrics and counts it for the current request."""

    def __init__(self, metrics: Metrics) -> None:
        self._durations = metrics.query_duration
        self._internal_errors = metrics.internal_errors

    def record(self, statement: Any, duration: float, *, count: bool = True) -> None:
        """Record one executed ``statement`` that took ``duration`` seconds (never raises).

        ``count=False`` times it without counting it for the current request (a second
        registry recording the same query).
        """
        try:
            text = statement if isinstance(statement, str) else _text_of(statement)
            query_type, shape = analyze(text)
            explicit = current_query_name.get()
            if explicit is not None:
                query_type = explicit
            key = (query_type,)
            observe = self._durations.observers.get(key)
            if observe is None:
                observe = self._durations.observer(key)
            observe(duration)
            if count:
                state = current_request.get()
                if state is not None:
                    state.count_query(shape, query_type)
                    state.query_seconds += duration
        except Exception:
            self._internal_errors.inc()


def _text_of(statement: Any) -> str:
    if isinstance(statement, bytes):
        return statement.decode("utf-8", "replace")
    return str(statement)


# -- SQLAlchemy -------------------------------------------------------------------------------


def instrument_sqlalchemy(
    engine: Any, *, registry: CollectorRegistry | None = None, pool: str = "default"
) -> None:
    """Time every query of ``engine`` and report its pool as ``pool``.

    Works with sync engines and ``AsyncEngine`` (through its ``sync_engine``). Pool gauges:
    ``db_pool_connections_in_use`` (checkouts minus checkins), ``db_pool_connections_max``
    (size + max_overflow; +Inf for pools without a limit), ``db_pool_pending_acquires`` (callers
    that found no idle connection and no room to open one) and
    ``db_pool_acquire_timeouts_total``. Call it once per engine, before the first connection;
    after ``engine.dispose()`` call it again for the new pool's waiting/timeout counts.
    """
    from sqlalchemy import event

    sync_engine = getattr(engine, "sync_engine", engine)
    metrics = Metrics.for_registry(registry)
    recorder = QueryRecorder(metrics)

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
    ) -> None:
        conn.info.setdefault(_START_KEY, []).append(perf_counter())

    def after_cursor_execute(
        conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
    ) -> None:
        starts = conn.info.get(_START_KEY)
        if starts:
            recorder.record(statement, perf_counter() - starts.pop())

    def handle_error(exception_context: Any) -> None:
        conn = exception_context.connection
        starts = conn.info.get(_START_KEY) if conn is not None else None
        if starts and exception_context.statement is not None:
            recorder.record(exception_context.statement, perf_counter() - starts.pop())

    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    event.listen(sync_engine, "handle_error", handle_error)
    _instrument_pool(sync_engine, metrics, pool)


def _instrument_pool(sync_engine: Any, metrics: Metrics, name: str) -> None:
    from sqlalchemy import event
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    pool = sync_engine.pool
    in_use = metrics.pool_in_use.get((name,))
    pending = metrics.pool_pending.get((name,))
    timeouts = metrics.pool_timeouts.get((name,))
    waits = metrics.pool_waits.get((name,))
    metrics.pool_max.get((name,)).set(_capacity(pool))
    in_use.set(0)
    pending.set(0)
    lock = threading.Lock()
    checked_out = 0

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        nonlocal checked_out
        with lock:
            checked_out += 1
            in_use.set(checked_out)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        nonlocal checked_out
        with lock:
            checked_out = max(0, checked_out - 1)
            in_use.set(checked_out)

    event.listen(sync_engine, "checkout", checkout)
    event.listen(sync_engine, "checkin", checkin)

    original = pool._do_get
    capacity = _capacity(pool)
    idle = getattr(pool, "checkedin", None)
    busy = getattr(pool, "checkedout", None)

    def must_wait() -> bool:
        # Only a caller that finds no idle connection and no room to open one waits; counting
        # every caller would make the gauge flicker on a healthy pool and page on noise.
        if idle is None or busy is None or math.isinf(capacity):
            return False
        return bool(idle() == 0 and busy() >= capacity)

    def do_get() -> Any:
        waiting = must_wait()
        if waiting:
            pending.inc()
            waits.inc()
        try:
            return original()
        except PoolTimeout:
            timeouts.inc()
            raise
        finally:
            if waiting:
                pending.dec()

    pool._do_get = do_get


def _capacity(pool: Any) -> float:
    size = getattr(pool, "size", None)
    if callable(size):  # QueuePool and its async variant
        overflow = getattr(pool, "_max_overflow", 0)
        return math.inf if overflow < 0 else float(size() + overflow)
    if isinstance(size, int):  # SingletonThreadPool: one connection per thread, up to size
        return float(size)
    if type(pool).__name__ == "StaticPool":
        return 1.0
    return math.inf  # NullPool and friends open as many connections as asked


# -- DB-API 2.0 -------------------------------------------------------------------------------


def instrument_dbapi(connection: Any, *, registry: CollectorRegistry | None = None) -> Any:
    """Wrap a DB-API 2.0 connection (sqlite3, psycopg, ...) so its queries are measured.

    Use the returned object in place of ``connection``: its cursors (and the ``execute``
    shortcut of sqlite3/psycopg connections) time every ``execute``/``executemany``. Everything
    else is passed through to the real connection.
    """
    return _Connection(connection, QueryRecorder(Metrics.for_registry(registry)))


class _Connection:
    __slots__ = ("_hlthz_recorder", "_hlthz_wrapped")

    def __init__(self, connection: Any, recorder: QueryRecorder) -> None:
        self._hlthz_wrapped = connection
        self._hlthz_recorder = recorder

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._hlthz_wrapped.cursor(*args, **kwargs), self._hlthz_recorder)

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            return self._hlthz_wrapped.execute(statement, *args, **kwargs)
        finally:
            self._hlthz_recorder.record(statement, perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hlthz_wrapped, name)

    def __enter__(self) -> _Connection:
        self._hlthz_wrapped.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._hlthz_wrapped.__exit__(*exc)


class _Cursor:
    __slots__ = ("_hlthz_recorder", "_hlthz_wrapped")

    def __init__(self, cursor: Any, recorder: QueryRecorder) -> None:
        self._hlthz_wrapped = cursor
        self._hlthz_recorder = recorder

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = self._hlthz_wrapped.execute(statement, *args, **kwargs)
        finally:
            self._hlthz_recorder.record(statement, perf_counter() - start)
        # sqlite3 and psycopg return the cursor itself: keep handing out the wrapper.
        return self if result is self._hlthz_wrapped else result

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = self._hlthz_wrapped.executemany(statement, *args, **kwargs)
        finally:
            self._hlthz_recorder.record(statement, perf_counter() - start)
        return self if result is self._hlthz_wrapped else result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hlthz_wrapped, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._hlthz_wrapped)

    def __enter__(self) -> _Cursor:
        self._hlthz_wrapped.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._hlthz_wrapped.__exit__(*exc)
