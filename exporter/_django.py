"""Django ORM queries, measured by ``instrument()`` through Django's ``execute_wrappers``.

Django runs every query of a connection through the callables in
``connection.execute_wrappers`` (the hook behind ``connection.execute_wrapper()``). A Django
connection object belongs to one thread (or one async context) and one database alias, so
HLTHZ adds its wrapper to each one as it connects (the ``connection_created`` signal) and, at
``instrument()``, to those of the calling thread that are open already. Every alias, every
thread and the threads async views run the ORM in (``sync_to_async``) are covered; queries
count for the request whose context they run in, like the SQLAlchemy hooks.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from hlthz.exporter._metrics import Metrics
from hlthz.exporter.db import QueryRecorder

_lock = threading.Lock()
_wrapper: DjangoQueries | None = None


class DjangoQueries:
    """The execute wrapper: times each query into every instrumented registry.

    One wrapper per process, whatever the number of ``instrument()`` calls: a second handler
    (WSGI and ASGI, or another registry) adds its metrics here instead of a second wrapper,
    so a query is counted once for its request.
    """

    def __init__(self) -> None:
        self.recorders: tuple[QueryRecorder, ...] = ()
        self._registries: list[weakref.ref[Any]] = []

    def add(self, metrics: Metrics) -> None:
        registry = metrics.registry
        if any(known() is registry for known in self._registries):
            return
        # Registries that no longer exist (a test's) stop being recorded into.
        kept = [
            (known, recorder)
            for known, recorder in zip(self._registries, self.recorders, strict=True)
            if known() is not None
        ]
        kept.append((weakref.ref(registry), QueryRecorder(metrics)))
        self._registries = [known for known, _ in kept]
        self.recorders = tuple(recorder for _, recorder in kept)

    def __call__(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        start = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            duration = perf_counter() - start
            counted = False
            for recorder in self.recorders:
                # executemany is one round trip for the driver: one query, as for SQLAlchemy.
                recorder.record(sql, duration, count=not counted)
                counted = True

    def attach(self, connection: Any) -> None:
        """Add the wrapper to one Django connection (a ``DatabaseWrapper``), once."""
        wrappers = getattr(connection, "execute_wrappers", None)
        if not isinstance(wrappers, list) or any(w is self for w in wrappers):
            return
        # First in the list: connection.execute_wrapper() pushes and pops at the end, so a
        # wrapper the application holds open while this connection connects keeps working.
        wrappers.insert(0, self)


def measure_django_queries(metrics: Metrics) -> None:
    """Measure every Django ORM query into ``metrics`` (idempotent; Django must be set up)."""
    global _wrapper
    from django.db import connections
    from django.db.backends.signals import connection_created

    with _lock:
        first = _wrapper is None
        if _wrapper is None:
            _wrapper = DjangoQueries()
        wrapper = _wrapper
        wrapper.add(metrics)
    if not first:
        return

    def on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
        wrapper.attach(connection)

    connection_created.connect(on_connect, weak=False, dispatch_uid="hlthz.exporter.django")
    try:
        opened = connections.all(initialized_only=True)
    except TypeError:  # Django < 4.1
        opened = connections.all()
    for connection in opened:
        if getattr(connection, "connection", None) is not None:
            wrapper.attach(connection)
