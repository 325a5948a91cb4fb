"""A frozen PostgreSQL server answers 503s within about a second, not never.

A stopped server (SIGSTOP, a VM paused, a storage stall) still has its kernel: TCP connects
succeed, sent bytes are acknowledged, and a client waits forever for the reply. Client timeouts
cannot tell that apart from a slow query, and server-side ``statement_timeout`` needs a running
server. So ask the server itself: the postmaster answers an ``SSLRequest`` with one byte at once,
even while every backend is busy, and not at all when it is frozen.

- :func:`probe` is that question, used before every new connection (libpq would wait at least
  2 s for a host that answers TCP but nothing else).
- :class:`FreezeWatch` watches operations in flight: one running longer than ``after`` seconds
  makes it probe; no answer means every connection of the engine has its socket shut down, so
  the blocked calls fail at once (the app turns that into a 503) instead of holding a worker.
  Slow queries on a live server are left alone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

# Int32 length 8, Int32 code 80877103: PostgreSQL's SSLRequest; the answer is b"S" or b"N".
_SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def probe(host: str, port: int, timeout: float) -> str | None:
    """None when the PostgreSQL server at ``host:port`` answers within ``timeout`` seconds, else
    why not (``did not answer within 0.5 s``, ``refused the connection (...)``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_SSL_REQUEST)
            if sock.recv(1) in (b"S", b"N"):
                return None
            return "answered, but not like PostgreSQL"
    except TimeoutError:
        return f"did not answer within {timeout:g} s"
    except OSError as error:
        return f"refused the connection ({error.strerror or error})"


class FreezeWatch:
    """Shuts down the sockets of ``engine``'s connections when its server stops answering."""

    def __init__(
        self, engine: Engine, host: str, port: int, *, after: float, timeout: float
    ) -> None:
        self.host, self.port = host, port
        self.after, self.timeout = after, timeout
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._in_flight: dict[int, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._last_probe = 0.0
        #: How many times the server was found frozen (for tests and logs).
        self.freezes = 0
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        self._connections.add(dbapi_connection)

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Mark one database operation in flight for the duration of the block."""
        token = object()
        with self._lock:
            self._in_flight[id(token)] = time.monotonic()
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="hlthz-db-freeze-watch", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.pop(id(token), None)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        tick = min(0.1, self.after / 2)
        while not self._stopped:
            self._wake.wait(tick)
            with self._lock:
                oldest = min(self._in_flight.values(), default=None)
            now = time.monotonic()
            # At most one probe per `after`: slow queries on a live server are common (the
            # story's "before" profile), and every probe makes the postmaster fork a backend.
            if oldest is None or now - oldest < self.after or now - self._last_probe < self.after:
                continue
            self._last_probe = now
            if probe(self.host, self.port, self.timeout) is not None:
                self.freezes += 1
                self._cut_all()

    def _cut_all(self) -> None:
        for connection in list(self._connections):
            with contextlib.suppress(Exception):
                fd = connection.pgconn.socket
                # A duplicate of the descriptor: shutting it down stops the connection for
                # every holder, and closing the duplicate leaves psycopg's own descriptor valid.
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
