"""Engines and pools for the demo API: SQLite (WAL) by default, PostgreSQL through psycopg 3.

The ``pool`` switch is the story's pool fix: 10 connections and no validation before, 50 at
most with 10 kept warm and a liveness check on checkout after. A request never waits longer than
``Settings.pool_timeout`` for a connection, an unreachable database fails the connect fast, and
a frozen one is detected while requests wait on it (:mod:`hlthz.demo_api.liveness`), so all end
as a 503 (see :class:`~hlthz.errors.ServiceUnavailable`) instead of a hung
worker.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool

from hlthz.demo_api import liveness, models
from hlthz.demo_api.settings import Settings, mask_password
from hlthz.errors import ConfigError, DatabaseError, ServiceUnavailable

log = logging.getLogger(__name__)

#: Pool shapes: (size kept open, extra connections allowed, validate on checkout).
POOL_BEFORE = (10, 0, False)
POOL_AFTER = (10, 40, True)


#: Accepted ``--db`` drivers -> the driver used: ``postgresql://`` means psycopg 3, not psycopg2.
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def normalize_url(url: str) -> str:
    """Check a ``--db`` URL and pin its driver (:class:`ConfigError` when unusable)."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"--db {mask_password(url)!r}: not a database URL; "
            "use sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"--db {mask_password(url)!r}: only sqlite:///FILE and postgresql://... "
            "(psycopg 3) databases are supported"
        )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def create_db_engine(url: str, *, pool: tuple[int, int, bool], settings: Settings) -> Engine:
    """An engine for ``url`` with the given pool shape and fast-failing connects."""
    size, overflow, pre_ping = pool
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        # Pool threads share connections one at a time; SQLite's own check is for the 1:1 case.
        connect_args = {"check_same_thread": False, "timeout": 5.0}
    else:
        # libpq counts whole seconds, at least 2: a server that does not answer fails then.
        connect_args = {"connect_timeout": max(1, round(settings.connect_timeout))}
    engine = sa.create_engine(
        url,
        poolclass=QueuePool,
        pool_size=size,
        max_overflow=overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        parsed = make_url(url)
        host = parsed.host or "localhost"
        if not host.startswith("/"):  # a Unix socket directory cannot hang like a host can
            event.listen(
                engine,
                "do_connect",
                _probe_first(host, parsed.port or 5432, settings.connect_timeout),
            )
    return engine


def _probe_first(host: str, port: int, timeout: float) -> Any:
    """A ``do_connect`` hook: ask the server (:func:`liveness.probe`) before libpq connects.

    libpq (and psycopg) never wait less than 2 s for a host that silently drops packets or
    accepts TCP but answers nothing (a frozen server), which would hold a worker that long per
    request; the probe, with our own timeout, turns either into a 503 in ``timeout`` seconds.
    It runs only when the pool opens a connection, not per request.
    """

    def check(dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        problem = liveness.probe(host, port, timeout)
        if problem is not None:
            raise dialect.loaded_dbapi.OperationalError(f"database server {host}:{port} {problem}")

    return check


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers run while the order endpoint writes; busy_timeout queues writers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """The app's engine plus the operations the switches need (indexes, warm-up, starvation)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.pool_shape = POOL_AFTER if settings.on("pool") else POOL_BEFORE
        self.engine = create_db_engine(self.url, pool=self.pool_shape, settings=settings)
        self._held: list[Any] = []
        self.freeze_watch: liveness.FreezeWatch | None = None
        parsed = make_url(self.engine.url)
        if self.backend == "postgresql" and not (parsed.host or "/").startswith("/"):
            self.freeze_watch = liveness.FreezeWatch(
                self.engine,
                parsed.host or "localhost",
                parsed.port or 5432,
                after=settings.connect_timeout,
                timeout=settings.connect_timeout,
            )

    def _watched(self) -> contextlib.AbstractContextManager[None]:
        return self.freeze_watch.watch() if self.freeze_watch else contextlib.nullcontext()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def capacity(self) -> int:
        """How many connections the pool hands out at most (size + overflow)."""
        return self.pool_shape[0] + self.pool_shape[1]

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection; pool timeouts and connect failures become 503s."""
        with _unavailable_on_failure(), self._watched(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A pooled connection inside a transaction, committed when the block succeeds."""
        with _unavailable_on_failure(), self._watched(), self.engine.begin() as conn:
            yield conn

    def check_seeded(self) -> None:
        """Raise :class:`DatabaseError` unless the database answers and holds demo data."""
        if self.backend == "sqlite":
            path = make_url(self.engine.url).database or ""
            if path and path != ":memory:" and not Path(path).exists():
                raise DatabaseError(
                    f"no demo database at {path}; run `hlthz api seed` first "
                    "(or pass --db to use another database)"
                )
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table("products"):
                    raise DatabaseError(
                        f"{self.safe_url}: no demo tables; run `hlthz api seed --db URL` first"
                    )
        except exc.OperationalError as error:
            raise DatabaseError(f"{self.safe_url}: cannot connect: {_first_line(error)}") from error

    @property
    def safe_url(self) -> str:
        """The database URL with any password masked, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def apply_indexes(self, enabled: bool) -> list[str]:
        """Create (``enabled``) or drop the optional indexes; return the names changed."""
        changed: list[str] = []
        with self.engine.begin() as conn:
            existing = {
                name
                for table in {
                    ix.table.name for ix in models.OPTIONAL_INDEXES if ix.table is not None
                }
                for name in (ix["name"] for ix in sa.inspect(conn).get_indexes(table))
            }
            for index in models.OPTIONAL_INDEXES:
                present = index.name in existing
                if enabled and not present:
                    index.create(conn)
                    changed.append(str(index.name))
                elif not enabled and present:
                    index.drop(conn)
                    changed.append(str(index.name))
            if changed:
                # Fresh statistics, so the planner uses (or stops using) what changed.
                conn.exec_driver_sql("ANALYZE")
        return changed

    def warm_up(self) -> None:
        """Open the pool's kept connections now, so the first requests do not pay for them."""
        conns = [self.engine.connect() for _ in range(self.pool_shape[0])]
        for conn in conns:
            conn.close()

    def hold_all_connections(self) -> int:
        """Check out every pooled connection and keep it (the pool-starvation fault)."""
        while len(self._held) < self.capacity:
            try:
                self._held.append(self.engine.pool.connect())
            except exc.TimeoutError:
                break
        return len(self._held)

    def release_held(self) -> None:
        """Give back the connections :meth:`hold_all_connections` took."""
        held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(Exception):
                conn.close()

    def dispose(self) -> None:
        """Release held connections and close the pool."""
        if self.freeze_watch is not None:
            self.freeze_watch.stop()
        self.release_held()
        self.engine.dispose()


@contextlib.contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except exc.TimeoutError as error:
        raise ServiceUnavailable("no database connection free in time (pool exhausted)") from error
    except exc.DBAPIError as error:
        # Connect failures and dropped connections; bugs in SQL (ProgrammingError) stay 500s.
        if isinstance(error, exc.OperationalError | exc.InterfaceError) or (
            error.connection_invalidated
        ):
            raise ServiceUnavailable(f"database unavailable: {_first_line(error)}") from error
        raise


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
