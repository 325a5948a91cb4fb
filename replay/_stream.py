"""The master ships the timeline to its workers: a distributed replay needs no capture on them.

The master alone reads the capture and walks the timeline (:func:`~hlthz.replay.schedule.
schedule`: one clock, one ``at`` per request, writes skipped and counted once). Each due request
goes to the worker that owns its session (:func:`~hlthz.replay.schedule.shard_of`, so a session
stays whole and in order on one worker), in batches over locust's own messaging
(``hlthz_records``: ``{"records": [packed requests]}``; ``None`` ends the stream).

Memory is bounded on both sides. A worker holds at most :data:`WINDOW` unconsumed batches: it
returns one credit (``hlthz_credit``) as it starts on each batch, and the master sends a worker
nothing while it has no credit. Its requests then wait at the master, up to
:data:`MAX_PENDING`, while the other workers' go on; beyond that the master waits for it, which
holds back the reading of the capture (back-pressure: the master never runs more than a bounded
stretch ahead of the slowest worker). On a timeline that lies
in the future the master reads at most :data:`LEAD` seconds ahead of the clock and sends partial
batches at least every :data:`FLUSH` seconds, so a quiet capture is not held in a batch past its
due time.

A worker that goes missing (locust's heartbeats) while the master waits on it is marked lost;
from then on its requests are counted as ``unsent`` (reported per shard), or with
``reassign_lost`` go to the remaining workers by the same session hash over the live ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
import gevent.event
import gevent.queue

from hlthz.replay.schedule import Due, shard_of

#: Requests per message.
BATCH = 200
#: Batches a worker may hold before it has started on them.
WINDOW = 8
#: Requests kept for a worker without credit before the master waits for it (and so stops
#: reading the capture): bounds the master's memory.
MAX_PENDING = WINDOW * BATCH
#: How far ahead of the clock the master reads a timeline that lies in the future (seconds).
LEAD = 2.0
#: Partial batches leave at least this often (seconds).
FLUSH = 0.05
#: How often a master waiting for credit checks whether the worker is still there (seconds).
_CHECK = 0.25


class ShippedRecord:
    """The part of a capture record the sender uses: method, path, headers, body, session and
    the captured status (compared with the target's)."""

    __slots__ = ("body", "headers", "method", "path", "session", "status")

    def __init__(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        session: str | None,
        status: int | None = None,
    ) -> None:
        self.method, self.path, self.headers = method, path, headers
        self.body, self.session, self.status = body, session, status


def pack(due: Due) -> list[Any]:
    """One due request as msgpack-friendly values (bytes stay bytes)."""
    record = due.record
    return [
        due.at,
        due.seq,
        record.method,
        record.path,
        record.headers,  # (name, value) pairs travel as msgpack arrays
        record.body or b"",
        record.session,
        getattr(record, "status", None),
    ]


def unpack(item: list[Any]) -> Due:
    """:func:`pack` reversed."""
    at, seq, method, path, headers, body, session, status = item
    record = ShippedRecord(
        str(method),
        str(path),
        [(str(n), str(v)) for n, v in headers],
        bytes(body),
        session,
        status if isinstance(status, int) else None,
    )
    return Due(float(at), int(seq), record)


class Feed:
    """A worker's end of the stream: batches in (:meth:`put`), due requests out (iteration).

    ``credit`` is called as each batch is started, telling the master there is room for one
    more. Iteration ends at the end of the stream or at :meth:`close`.
    """

    def __init__(self, credit: Callable[[], None]) -> None:
        self._queue: gevent.queue.Queue[list[Any] | None] = gevent.queue.Queue()
        self._credit = credit
        self.received = 0

    def put(self, batch: list[Any] | None) -> None:
        self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[Due]:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            self._credit()
            self.received += len(batch)
            for item in batch:
                yield unpack(item)


class Streamer:
    """The master's end: walks ``timeline`` and ships each request to its worker.

    ``clients`` are the workers' locust ids in shard order; ``send(client_id, batch)`` sends
    one ``hlthz_records`` message; ``missing(client_id)`` says whether locust lost it; ``t0`` is
    the monotonic instant the timeline starts at. Call :meth:`credit` for each ``hlthz_credit``
    and run :meth:`run` in a greenlet.
    """

    def __init__(
        self,
        clients: list[str],
        timeline: Iterable[Due],
        t0: float,
        *,
        send: Callable[[str, list[Any] | None], None],
        missing: Callable[[str], bool],
        reassign_lost: bool = False,
    ) -> None:
        self.clients = list(clients)
        self.timeline = timeline
        self.t0 = t0
        self._send = send
        self._missing = missing
        self.reassign_lost = reassign_lost
        self._credit = dict.fromkeys(self.clients, WINDOW)
        self._pending: dict[str, list[list[Any]]] = {c: [] for c in self.clients}
        self._more = gevent.event.Event()
        #: Workers found lost while the master waited on them, in shard order.
        self.lost: list[str] = []
        #: Requests shipped to each worker, and those its loss kept from it.
        self.shipped = dict.fromkeys(self.clients, 0)
        self.unsent = dict.fromkeys(self.clients, 0)
        self.done = False

    def credit(self, client_id: str) -> None:
        if client_id in self._credit:
            self._credit[client_id] += 1
            self._more.set()

    # -- shipping -----------------------------------------------------------------------------

    def _owner(self, due: Due) -> str | None:
        session = getattr(due.record, "session", None)
        owner = self.clients[shard_of(session, due.seq, len(self.clients))]
        if owner not in self.lost:
            return owner
        live = [c for c in self.clients if c not in self.lost]
        if not self.reassign_lost or not live:
            self.unsent[owner] += 1
            return None
        return live[shard_of(session, due.seq, len(live))]

    def _lose(self, client_id: str) -> None:
        self.lost.append(client_id)
        self.unsent[client_id] += len(self._pending[client_id])
        pending, self._pending[client_id] = self._pending[client_id], []
        if self.reassign_lost:
            self.unsent[client_id] -= len(pending)
            for item in pending:
                owner = self._owner(unpack(item))
                if owner is not None:
                    self._pending[owner].append(item)

    def _flush(self, client_id: str, *, wait: bool = False) -> None:
        """Send ``client_id``'s pending requests while it has credit; with ``wait`` (or when
        its pending requests reach :data:`MAX_PENDING`), wait for credit until all are sent."""
        pending = self._pending[client_id]
        while pending and client_id not in self.lost:
            if self._missing(client_id):
                self._lose(client_id)
                return
            if self._credit[client_id] <= 0:
                if not wait and len(pending) < MAX_PENDING:
                    return  # a slow worker's requests wait here, the others' go on
                self._more.clear()
                self._more.wait(_CHECK)
                continue
            batch, pending[:] = pending[:BATCH], pending[BATCH:]
            self._credit[client_id] -= 1
            self.shipped[client_id] += len(batch)
            self._send(client_id, batch)

    def _flush_all(self, *, wait: bool = False) -> None:
        for client_id in self.clients:
            self._flush(client_id, wait=wait)

    def run(self) -> None:
        """Ship the whole timeline, then end every live worker's stream."""
        now = time.monotonic
        last_flush = now()
        for count, due in enumerate(self.timeline, 1):
            ahead = self.t0 + due.at - now()
            if ahead > LEAD:
                self._flush_all()
                gevent.sleep(ahead - LEAD)
                last_flush = now()
            owner = self._owner(due)
            if owner is not None:
                pending = self._pending[owner]
                pending.append(pack(due))
                if len(pending) >= BATCH:
                    self._flush(owner)
            if now() - last_flush > FLUSH:
                self._flush_all()
                last_flush = now()
            elif not count % 64:
                gevent.sleep(0)  # let credits and heartbeats in while reading flat out
        self._flush_all(wait=True)
        for client_id in self.clients:
            if client_id not in self.lost:
                self._send(client_id, None)
        self.done = True
