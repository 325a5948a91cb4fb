"""The open-model sender of the replay engine: one timeline walked, each request sent on time.

Imported only by :mod:`hlthz.replay._locust`, after locust has patched the socket module for
gevent. :class:`Sender` walks a timeline (its shard of the capture, or a worker's feed from the
master) and starts each request when it is due, whatever earlier requests are doing, on one of
at most ``concurrency`` sender greenlets; when all are busy the request waits for one (counted
in ``cap_hits``; the wait shows up honestly as schedule lag and latency). A session's next
request waits for its previous response, so sessions keep their order. Requests go through
geventhttpclient and never follow a redirect, so a request cannot leave the target.
"""

from __future__ import annotations

import errno
import hashlib
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
import gevent.event
import gevent.queue
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from hlthz.net import HOP_BY_HOP
from hlthz.replay.engine import Target
from hlthz.replay.plan import ReplayPlan
from hlthz.replay.schedule import SAFE_METHODS, Due, interleave, schedule
from hlthz.replay.timing import Recorder
from hlthz.routes import Routes

# Never replayed as captured: hop-by-hop headers, and what the client sets itself (the target's
# Host, the body's length, Expect).
_NOT_REPLAYED = HOP_BY_HOP | {"host", "content-length", "expect"}
#: Capture marks of a body that is not the original (docs/formats.md).
_MARKED_BODIES = ("body_truncated", "body_unknown", "body_dropped")
#: The last stretch before a due time is waited by yielding, not by a timer (seconds).
_SPIN = 0.0005


def _header_overrides(pairs: Iterable[tuple[str, str]]) -> dict[str, str | None]:
    # An empty value removes the header.
    return {name.strip().lower(): (value.strip() or None) for name, value in pairs}


def _request_headers(
    captured: Iterable[tuple[str, str]], overrides: dict[str, str | None]
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in captured:
        key = name.lower()
        if key in _NOT_REPLAYED or key in overrides:
            continue
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    for key, override in overrides.items():
        if override is not None:
            headers[key] = override
    return headers


def open_records(
    plan: ReplayPlan, on_skip: Callable[[str], None], notes: Callable[[], Counter[str]]
) -> Callable[[], Iterable[Any]]:
    """The plan's capture, one pass per call, through its run-time controls (filters,
    sampling, rewriting; ``on_skip`` counts what they leave out), what deserves a warning
    counted in ``notes()`` (first pass only)."""
    from hlthz.replay.capture.inputs import merged_records
    from hlthz.replay.capture.sources import iter_records

    path, fmt = str(plan.capture), plan.format
    paths = [str(p) for p in plan.captures]
    controlled = plan.controls.wrap(
        (lambda: merged_records(paths, format=fmt))
        if len(paths) > 1
        else (lambda: iter_records(path, format=fmt)),
        Routes(plan.routes),
        on_skip,
    )
    writes = plan.schedule.allow_writes
    passes = 0

    def records() -> Iterator[Any]:
        nonlocal passes
        passes += 1
        if passes > 1:
            yield from controlled()
            return
        last = 0
        for record in controlled():
            if record.ts_ns < last:
                notes()["out_of_order"] += 1
            last = max(last, record.ts_ns)
            if writes and record.extra and record.method.upper() not in SAFE_METHODS:
                for kind in _MARKED_BODIES:
                    if record.extra.get(kind):
                        notes()[kind] += 1
            yield record

    return records


class Fingerprint:
    """A digest of the records of the capture's first pass (method, path, body): two reports
    with the same fingerprint replayed the same requests (``run.capture_fingerprint``)."""

    def __init__(self, open_records: Callable[[], Iterable[Any]]) -> None:
        self._open = open_records
        self._digest = hashlib.sha256()
        self.records = 0
        self._passes = 0

    def __call__(self) -> Iterable[Any]:
        self._passes += 1
        if self._passes > 1:
            yield from self._open()
            return
        update = self._digest.update
        for record in self._open():
            body = record.body or b""
            update(
                f"{record.method.upper()} {record.path} {len(body)}\n".encode("utf-8", "replace")
            )
            if body:
                update(hashlib.sha256(body).digest())
            self.records += 1
            yield record

    @property
    def value(self) -> str:
        return f"sha256:{self._digest.hexdigest()[:32]}/{self.records}"


class _BodyTooLarge(Exception):
    pass


def _failure_kind(exc: BaseException) -> str:
    """How a request failed, named as in the report's ``failures``."""
    if isinstance(exc, _BodyTooLarge):
        return "body_too_large"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, gevent.Timeout | socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(exc, HTTPParseError):
        return "bad_response"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED,):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    return "other"


class _Deadline(Exception):
    """The whole request took longer than the plan's ``deadline``."""


class Sender:
    """Sends one shard of the timeline into ``recorder`` (the open model, see module doc)."""

    def __init__(self, plan: ReplayPlan, recorder: Recorder, shard: int, shards: int) -> None:
        self.plan = plan
        self.recorder = recorder
        #: The baseline side's measurements (an interleaved replay only).
        self.baseline_recorder = Recorder()
        self.target = Target(plan.target)
        self.baseline = None if plan.baseline is None else Target(plan.baseline, what="baseline")
        self.max_body = plan.max_body
        self.warmup = plan.controls.warmup
        self.deadline = plan.deadline
        self.overrides = _header_overrides(plan.headers)
        self.timeout = plan.timeout
        self.shard, self.shards = shard, shards
        self.stop_event = gevent.event.Event()
        self.concurrency = plan.concurrency
        self.routes = Routes(plan.routes)
        # Due requests are handed to idle sender greenlets through a channel (a put blocks
        # until one takes it); new ones are started up to the cap. Reusing greenlets is
        # cheaper than spawning one per request.
        self._channel: gevent.queue.Channel = gevent.queue.Channel()
        self._senders: list[gevent.Greenlet] = []
        self._busy = 0
        self.sent = 0
        self._sessions: dict[str, gevent.event.Event] = {}
        self.client = self._client(self.target)
        self.baseline_client = None if self.baseline is None else self._client(self.baseline)
        self.fingerprint: Fingerprint | None = None

    def _client(self, target: Target) -> HTTPClient:
        return HTTPClient(
            target.host,
            target.port,
            ssl=target.ssl,
            insecure=self.plan.insecure,
            concurrency=self.plan.concurrency,
            connection_timeout=self.timeout,
            network_timeout=self.timeout,
            headers={"user-agent": "hlthz-replay"},
        )

    @property
    def in_flight(self) -> int:
        return self._busy

    def run(self, t0: float, timeline: Iterable[Due] | None = None) -> None:
        """Walk the timeline from monotonic ``t0`` until it ends or :meth:`stop` is called:
        ``timeline`` (a worker's feed from the master), else this shard of the plan's capture."""
        records: Fingerprint | None = None
        if timeline is None:
            records = self.fingerprint = Fingerprint(
                open_records(self.plan, self._skip, lambda: self.recorder.notes)
            )
            timeline = schedule(
                records,
                self.plan.schedule,
                shard=self.shard,
                shards=self.shards,
                # The recorder may be swapped (a worker ships intervals): look it up each time.
                on_skip=lambda reason: self._skip(reason),
            )
        sides: Iterable[tuple[str, Any]]
        if self.baseline is not None:
            sides = interleave(timeline, self.plan.block)
        else:
            sides = (("candidate", due) for due in timeline)
        now = time.monotonic
        # Interleaved, a request is warm-up on both sides or on neither (its first side
        # decides), so both sides measure the same requests and pair one by one. At most a
        # block of requests waits here for its second side.
        first_side: dict[int, bool] = {}
        try:
            for side, due in sides:
                when = t0 + due.at
                delay = when - now()
                # gevent's timers fire up to a millisecond late (epoll's timeout is in ms), so
                # sleep until just before the due time and yield in a loop for the rest. A
                # longer spin would cost more: the kernel then preempts a busy process sooner.
                if delay > _SPIN and self.stop_event.wait(delay - _SPIN):
                    break
                while now() < when:
                    gevent.sleep(0)
                if self.stop_event.is_set():
                    break
                if not self._channel.getters:
                    if len(self._senders) < self.concurrency:
                        self._senders.append(gevent.spawn(self._serve))
                    else:
                        self.recorder.cap_hits += 1
                warm = due.at < self.warmup
                if self.baseline is not None:
                    decided = first_side.pop(due.seq, None)
                    if decided is None:
                        first_side[due.seq] = warm
                    else:
                        warm = decided
                self._channel.put((due.record, when, due.at, side, due.seq, warm))
                self.sent += 1
        finally:
            # In-flight requests end by their own timeout; give them that long, then stop.
            deadline = now() + self.timeout + 1.0
            try:
                for _ in self._senders:
                    self._channel.put(None, timeout=max(0.0, deadline - now()))
            except gevent.queue.Full:
                pass
            gevent.joinall(self._senders, timeout=max(0.0, deadline - now()))
            gevent.killall(self._senders, block=True, timeout=1.0)
            self.client.close()
            if self.baseline_client is not None:
                self.baseline_client.close()
            if records is not None:  # a worker's master fingerprints the capture itself
                self.recorder.fingerprint = records.value
                self.baseline_recorder.fingerprint = records.value

    def _skip(self, reason: str) -> None:
        # The recorder may be swapped (a worker ships intervals), so look it up each time.
        self.recorder.skip(reason)
        if self.baseline is not None:
            self.baseline_recorder.skip(reason)

    def stop(self) -> None:
        self.stop_event.set()

    def _serve(self) -> None:
        get = self._channel.get
        while True:
            item = get()
            if item is None:
                return
            self._busy += 1
            try:
                self._send(*item)
            finally:
                self._busy -= 1

    def _send(self, record: Any, when: float, at: float, side: str, seq: int, warm: bool) -> None:
        started = time.monotonic()
        session = record.session
        if session and side == "baseline":
            session = "baseline\0" + session  # each side keeps its own session order
        mine: gevent.event.Event | None = None
        if session:
            previous = self._sessions.get(session)
            mine = self._sessions[session] = gevent.event.Event()
            if previous is not None:
                previous.wait(self.timeout)
        baseline = side == "baseline"
        target = self.baseline if baseline and self.baseline is not None else self.target
        client = self.baseline_client if baseline else self.client
        assert client is not None
        uri = target.uri(record.path)
        headers = _request_headers(record.headers, self.overrides)
        status: int | None = None
        failure: str | None = None
        sent = time.monotonic()
        try:
            with gevent.Timeout(self.deadline, _Deadline):
                status = self._exchange(client, record, uri, headers)
        except _Deadline:
            failure = "deadline"
        except (gevent.Timeout, Exception) as exc:
            failure = _failure_kind(exc)
        ended = time.monotonic()
        recorder = self.baseline_recorder if baseline else self.recorder
        captured = getattr(record, "status", None)
        try:
            if warm:
                recorder.skip("warmup")  # sent, but left out of the statistics
                return
            recorder.record(
                self.routes.name(record.method, record.path),
                at,
                started - when,
                ended - sent,
                ended - when,
                status,
                failure=failure,
                captured=captured if isinstance(captured, int) else None,
                path=record.path,
                seq=seq,
            )
        finally:
            if mine is not None:
                mine.set()
                if self._sessions.get(session) is mine:
                    del self._sessions[session]

    def _exchange(self, client: HTTPClient, record: Any, uri: str, headers: dict[str, str]) -> int:
        """Send one request and read its whole response, at most ``max_body`` bytes of body;
        the status code."""
        response = client.request(
            record.method.upper(), uri, body=record.body or None, headers=headers
        )
        complete = False
        try:
            size = 0
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_body:
                    raise _BodyTooLarge()
            complete = True
            return int(response.status_code)
        finally:
            if not complete:
                # A body left unread must not go back to the pool with its connection:
                # close the socket (geventhttpclient has no public call for that).
                sock, pool = getattr(response, "_sock", None), getattr(response, "_pool", None)
                if sock is not None and pool is not None:
                    pool.release_socket(sock)
                    response._sock = None
                    response._pool = None
            response.release()
