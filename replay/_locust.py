"""The replay engine's process: locust, gevent and the open-model sender.

Never imported by ``import hlthz.replay``: locust monkey-patches the socket module when it is
imported. :mod:`hlthz.replay.engine` runs this module in a child process started as
``python -c "import locust; from hlthz.replay._locust import main; main()" run PLAN RESULT
--parent PID`` (locust first, so gevent patches before anything else opens a socket), and
``hlthz replay worker`` runs it as ``worker --master HOST:PORT``. The plan is a
:class:`~hlthz.replay.plan.ReplayPlan` in JSON; the child deletes its file once read (it may hold
header tokens). With ``--parent`` the process dies with that parent (:mod:`._lifeline`): the
engine removes its plan and result files first, its local workers (started with ``--parent``
too) simply exit.

Locust provides the process model: an :class:`~locust.env.Environment` with a local runner for
a single process, or a master runner and worker runners speaking locust's own protocol (with its
heartbeats, which is how a lost worker is noticed). The requests go through geventhttpclient,
the transport under locust's ``FastHttpUser``, called directly: the sender needs its own clock
readings around each request and none of FastHttpSession's per-request event machinery, and
never follows a redirect, so a request cannot leave the target.

Open model: one greenlet walks the timeline and starts each request when it is due, whatever
earlier requests are doing, on one of at most ``concurrency`` sender greenlets. When all are
busy the request waits for one (counted in ``cap_hits``; the wait shows up honestly as
schedule lag and latency). A session's next request waits for its previous response, so
sessions keep their order; its latency still counts from the scheduled time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from hlthz.errors import HlthzError, PlanError, ReplayError
from hlthz.files import atomic_write
from hlthz.net import HOP_BY_HOP, format_host_port, parse_host_port
from hlthz.replay._lifeline import die_with_parent, parent_alive
from hlthz.replay._stream import Feed, Streamer
from hlthz.replay.engine import Target, child_argv, error_from_payload, error_payload
from hlthz.replay.plan import ReplayPlan
from hlthz.replay.schedule import SAFE_METHODS, Due, interleave, schedule
from hlthz.replay.timing import Recorder, encode
from hlthz.routes import Routes

_log = logging.getLogger("hlthz.replay")

# Never replayed as captured: hop-by-hop headers, and what the client sets itself (the target's
# Host, the body's length, Expect).
_NOT_REPLAYED = HOP_BY_HOP | {"host", "content-length", "expect"}
#: Capture marks of a body that is not the original (docs/formats.md).
_MARKED_BODIES = ("body_truncated", "body_unknown", "body_dropped")
#: The last stretch before a due time is waited by yielding, not by a timer (seconds).
_SPIN = 0.0005
#: How often a worker ships its measurements to the master (seconds).
_SHIP_INTERVAL = 1.0
_WORKER_READY_TIMEOUT = 60.0
#: How often a child checks that its parent is alive (besides the kernel's notice on Linux).
_PARENT_POLL = 0.5


# -- requests --------------------------------------------------------------------------------


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


def _open_records(
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


class _Fingerprint:
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
        self.fingerprint: _Fingerprint | None = None

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
        records: _Fingerprint | None = None
        if timeline is None:
            records = self.fingerprint = _Fingerprint(
                _open_records(self.plan, self._skip, lambda: self.recorder.notes)
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
                self._channel.put((due.record, when, due.at, side, due.seq))
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

    def _send(self, record: Any, when: float, at: float, side: str, seq: int) -> None:
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
            if at < self.warmup:
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


# -- progress --------------------------------------------------------------------------------


class _Progress:
    """A one-line live status on stderr: elapsed, sent, rate, P95, errors, lag."""

    def __init__(self, enabled: bool, recorder: Recorder, duration: float | None) -> None:
        self.recorder = recorder
        self.duration = duration
        self.live: Any = None
        self._last = (time.monotonic(), 0)
        self.rate = 0.0
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, elapsed: float) -> None:
        now, count = time.monotonic(), self.recorder.requests
        then, before = self._last
        if now - then >= 1.0:
            self.rate = (count - before) / (now - then)
            self._last = (now, count)
        elif self.rate == 0.0 and elapsed > 0.1:
            self.rate = count / elapsed  # the first second: the average so far
        if self.live is None:
            return
        from rich.text import Text

        rec = self.recorder
        p95 = rec.latency.get_value_at_percentile(95) / 1000 if count else 0.0
        lag = rec.lag.get_value_at_percentile(99) / 1000 if count else 0.0
        errors = rec.errors
        share = errors / count if count else 0.0
        total = f"/{self.duration:g}" if self.duration else ""
        self.live.update(
            Text(
                f"{elapsed:.1f}{total} s  {count:,} done  {self.rate:,.0f} req/s  "
                f"p95 {p95:.1f} ms  err {errors:,} ({share:.2%})  lag p99 {lag:.1f} ms"
            )
        )

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


# -- processes -------------------------------------------------------------------------------


def _ignore_more_interrupts() -> None:
    # A terminal's Ctrl-C reaches this process and the parent forwards it too: the first one
    # starts a clean stop, and a second must not abort writing the partial result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serve_metrics(plan: ReplayPlan, recorder: Recorder, in_flight: Callable[[], int]) -> None:
    if plan.metrics_port is not None:
        from hlthz.replay.live_metrics import serve

        serve(plan.metrics_port, recorder, plan.run_name, in_flight)


def _run_local(plan: ReplayPlan, recorder: Recorder) -> dict[str, Any]:
    """One process: a locust LocalRunner whose single user walks the whole timeline."""
    from locust import User, task
    from locust.env import Environment

    sender = Sender(plan, recorder, 0, 1)
    finished = gevent.event.Event()
    failures: list[BaseException] = []
    t0 = time.monotonic() + 0.05

    class ReplayUser(User):
        # One user is the whole open-model sender: it never waits between tasks.
        fixed_count = 1

        @task
        def replay(self) -> None:
            # locust would log a task's exception and carry on: keep it for the caller instead.
            try:
                sender.run(t0)
            except Exception as exc:
                failures.append(exc)
            finally:
                finished.set()
            gevent.sleep(1e9)

    env = Environment(user_classes=[ReplayUser], host=plan.target)
    runner = env.create_local_runner()
    _serve_metrics(plan, recorder, lambda: sender.in_flight)
    progress = _Progress(plan.progress, recorder, plan.schedule.duration)
    interrupted = False
    runner.start(1, spawn_rate=1)
    try:
        while not finished.wait(0.25):
            progress.update(time.monotonic() - t0)
    except KeyboardInterrupt:
        interrupted = True
        _ignore_more_interrupts()
        sender.stop()
        finished.wait(sender.timeout + 3.0)
    finally:
        ended = time.monotonic()
        progress.update(ended - t0)
        progress.close()
        runner.quit()
    if failures:
        raise failures[0]
    out: dict[str, Any] = {
        "elapsed_s": ended - t0,
        "interrupted": interrupted,
        "workers": None,
    }
    if plan.baseline is not None:
        base = sender.baseline_recorder
        out["baseline"] = {"wire": base.to_wire(), "series": list(base.series())}
    return out


def _run_master(plan: ReplayPlan, recorder: Recorder) -> dict[str, Any]:
    """A locust master and ``workers`` local worker processes (plus any remote ones)."""
    from locust.env import Environment
    from locust.exception import RPCError
    from locust.runners import STATE_MISSING

    host, port = parse_host_port(
        plan.master_bind or "127.0.0.1:0", what="master_bind", allow_port_zero=True
    )
    if port == 0:
        from hlthz.procs import free_port

        port = free_port(host or "127.0.0.1")
    # Local workers connect to the bound address, or to loopback when bound to all interfaces.
    connect_host = "127.0.0.1" if host in ("", "*", "0.0.0.0") else host
    env = Environment(user_classes=[])
    try:
        master = env.create_master_runner(
            master_bind_host=host or "127.0.0.1", master_bind_port=port
        )
    except RPCError as exc:  # the port is taken: one line, not the child's traceback
        address = format_host_port(host or "127.0.0.1", port)
        raise PlanError(
            "master_bind", f"{address}: cannot listen ({exc}); choose a free port"
        ) from None
    local = plan.workers
    expected = local + plan.remote_workers
    done: dict[str, dict[str, Any]] = {}
    in_flight: dict[str, int] = {}

    def on_stats(environment: Any, msg: Any, **_: Any) -> None:
        recorder.merge_wire(msg.data["wire"])
        in_flight[msg.node_id] = int(msg.data.get("in_flight", 0))

    # Set when a worker is done: the wait below ends then, not at its next poll (the run's
    # duration, and so its rate, would otherwise count up to a poll interval of idling).
    finishing = gevent.event.Event()

    def on_done(environment: Any, msg: Any, **_: Any) -> None:
        on_stats(environment, msg)
        done[msg.node_id] = msg.data
        in_flight[msg.node_id] = 0
        finishing.set()

    streamer: Streamer | None = None

    def on_credit(environment: Any, msg: Any, **_: Any) -> None:
        if streamer is not None:
            streamer.credit(msg.node_id)

    def missing(client_id: str) -> bool:
        node = master.clients.get(client_id)
        return node is None or node.state == STATE_MISSING

    master.register_message("hlthz_stats", on_stats)
    master.register_message("hlthz_done", on_done)
    master.register_message("hlthz_credit", on_credit)
    master_address = format_host_port(connect_host, port)
    procs = [
        subprocess.Popen(
            # --parent: they die with this process, whatever happens to it.
            [*child_argv(), "worker", "--master", master_address, "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the master, which stops them in order
        )
        for _ in range(local)
    ]
    progress = _Progress(plan.progress, recorder, plan.schedule.duration)
    interrupted = False
    assigned: list[str] = []
    t0 = time.monotonic()
    shipping: gevent.Greenlet | None = None
    try:
        deadline = time.monotonic() + _WORKER_READY_TIMEOUT
        while len(master.clients.ready) < expected:
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"only {len(master.clients.ready)} of {expected} replay workers connected "
                    f"to {format_host_port(host or '127.0.0.1', port)} within "
                    f"{_WORKER_READY_TIMEOUT:g} s"
                )
            gevent.sleep(0.05)
        assigned = sorted(client.id for client in master.clients.ready)[:expected]
        # One absolute start for everyone, a little ahead so every worker is waiting for it.
        t0_wall = time.time() + 0.5
        t0 = time.monotonic() + 0.5
        document = plan.to_json()  # the workers read it with ReplayPlan.from_json
        for index, client_id in enumerate(assigned):
            master.send_message(
                "hlthz_start",
                {"plan": document, "shard": index, "shards": expected, "t0_wall": t0_wall},
                client_id=client_id,
            )
        # The master alone reads the capture: one timeline, shipped to the workers by session.
        records = _Fingerprint(_open_records(plan, recorder.skip, lambda: recorder.notes))
        streamer = Streamer(
            assigned,
            schedule(records, plan.schedule, on_skip=lambda reason: recorder.skip(reason)),
            t0,
            send=lambda client_id, batch: master.send_message(
                "hlthz_records", {"records": batch}, client_id=client_id
            ),
            missing=missing,
            reassign_lost=plan.reassign_lost,
        )
        shipping = gevent.spawn(streamer.run)

        def finished() -> bool:
            if shipping is not None and shipping.dead and not shipping.successful():
                return True  # the capture could not be read: stop, and say why below
            for client_id in assigned:
                if client_id not in done and not missing(client_id):
                    return False
            return True

        def stop_workers() -> None:
            if shipping is not None:
                shipping.kill()
            for client_id in assigned:
                master.send_message("hlthz_stop", None, client_id=client_id)

        _serve_metrics(plan, recorder, lambda: sum(in_flight.values()))
        try:
            while not finished():
                progress.update(time.monotonic() - t0)
                finishing.wait(0.25)
                finishing.clear()
            if shipping.dead and not shipping.successful():
                stop_workers()
                deadline = time.monotonic() + plan.timeout + 3.0
                while len(done) < len(assigned) and time.monotonic() < deadline:
                    gevent.sleep(0.1)
                error = shipping.exception
                if isinstance(error, HlthzError | OSError):
                    raise error
                raise ReplayError(f"shipping the capture to the workers failed ({error!r})")
        except KeyboardInterrupt:
            interrupted = True
            _ignore_more_interrupts()
            stop_workers()
            deadline = time.monotonic() + plan.timeout + 3.0
            while not finished() and time.monotonic() < deadline:
                gevent.sleep(0.1)
    finally:
        elapsed = time.monotonic() - t0
        progress.update(elapsed)
        progress.close()
        if shipping is not None:
            shipping.kill()
        master.quit()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for data in done.values():
        if data.get("error"):
            raise error_from_payload(data["error"])
    if streamer is not None:
        recorder.fingerprint = records.value  # the master read the capture, not the workers
    lost = [index for index, client_id in enumerate(assigned) if client_id not in done]
    return {
        "elapsed_s": elapsed,
        "interrupted": interrupted,
        "workers": {
            "expected": expected,
            "finished": expected - len(lost),
            "lost": lost,
            "missing_share": len(lost) / expected if expected else 0.0,
            "shards": [
                {
                    "index": index,
                    "sent": done[client_id]["sent"] if client_id in done else None,
                    "latency_hdr": done[client_id]["shard_latency"] if client_id in done else None,
                    "shipped": streamer.shipped[client_id] if streamer is not None else None,
                    "unsent": streamer.unsent[client_id] if streamer is not None else None,
                }
                for index, client_id in enumerate(assigned)
            ],
        },
    }


def worker_main(master: str) -> None:
    """Join a locust master at ``HOST:PORT`` and send what it ships (until it quits).

    The worker needs no capture: the master streams its requests (:mod:`._stream`)."""
    from locust.env import Environment

    host, port = parse_host_port(master, what="--master")
    env = Environment(user_classes=[])
    runner = env.create_worker_runner(host, port)
    senders: list[Sender] = []
    # Made before any message can arrive: records may come before on_start's greenlet runs.
    feed = Feed(lambda: runner.send_message("hlthz_credit", None))

    def on_records(environment: Any, msg: Any, **_: Any) -> None:
        feed.put(msg.data["records"])

    def on_start(environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        try:
            plan = ReplayPlan.from_json(str(data["plan"]))
            sender = Sender(plan, Recorder(), int(data["shard"]), int(data["shards"]))
        except (HlthzError, KeyError, TypeError, ValueError) as exc:
            # A master of another hlthz version, say: tell it, or it waits for this shard.
            problem = (
                exc
                if isinstance(exc, HlthzError)
                else ReplayError(f"the master sent no usable replay plan ({type(exc).__name__})")
            )
            empty = Recorder()
            runner.send_message(
                "hlthz_done",
                {
                    "wire": empty.to_wire(),
                    "in_flight": 0,
                    "sent": 0,
                    "shard_latency": encode(empty.latency),
                    "error": error_payload(problem),
                },
            )
            return
        # Everything this worker measured, kept whole so the master can check its merge.
        shard_latency = Recorder().latency
        senders.append(sender)
        t0 = time.monotonic() + (float(data["t0_wall"]) - time.time())

        def ship(kind: str, **extra: Any) -> None:
            current, sender.recorder = sender.recorder, Recorder()
            shard_latency.add(current.latency)
            payload = {"wire": current.to_wire(), "in_flight": sender.in_flight, **extra}
            if kind == "hlthz_done":
                payload["shard_latency"] = encode(shard_latency)
            runner.send_message(kind, payload)

        def shipper() -> None:
            while True:
                gevent.sleep(_SHIP_INTERVAL)
                ship("hlthz_stats")

        shipping = gevent.spawn(shipper)
        error: dict[str, Any] | None = None
        try:
            sender.run(t0, timeline=feed)
        except (HlthzError, OSError) as exc:  # a bad capture: the master reports it
            # Anything escaping here would leave the master waiting for a "done" that never
            # comes while this worker's heartbeats say it is alive.
            error = error_payload(exc)
        finally:
            shipping.kill()
        ship("hlthz_done", sent=sender.sent, error=error)

    def on_stop(environment: Any, msg: Any, **_: Any) -> None:
        for sender in senders:
            sender.stop()
        feed.close()

    runner.register_message("hlthz_start", on_start, concurrent=True)
    runner.register_message("hlthz_records", on_records)
    runner.register_message("hlthz_stop", on_stop)
    runner.greenlet.join()


# -- entry point -----------------------------------------------------------------------------


def run_child(plan_path: str, result_path: str) -> int:
    """Run the replay described by the plan file (a :class:`ReplayPlan` in JSON, deleted once
    read: it may hold header tokens); write the outcome to ``result_path``."""
    recorder = Recorder()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    cpu0 = time.process_time()
    try:
        try:
            text = Path(plan_path).read_text(encoding="utf-8")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(plan_path)
        plan = ReplayPlan.from_json(text)
        if plan.workers > 0 or plan.remote_workers > 0:
            outcome = _run_master(plan, recorder)
        else:
            outcome = _run_local(plan, recorder)
    except (HlthzError, OSError) as exc:
        atomic_write(result_path, json.dumps({"error": error_payload(exc)}), mode=0o600)
        return 2
    # The CPU share over at least a second: a run that sent nothing must not claim a
    # billion percent of a core.
    elapsed = max(outcome["elapsed_s"], 1.0)
    result = {
        "started_at": started,
        "cpu": (time.process_time() - cpu0) / elapsed,
        "wire": recorder.to_wire(),
        "series": list(recorder.series()),
        **outcome,
    }
    atomic_write(result_path, json.dumps(result), mode=0o600)
    return 0


def _remove_run_files(plan_path: str, result_path: str) -> None:
    """The parent is gone and cannot clean up: remove the plan (if still there), the result and
    the folder ``run_replay`` made for them (only if nothing else is in it)."""
    result = Path(result_path)
    folder = result.parent
    stray = list(folder.glob(f".{result.name}.*.tmp")) + list(folder.glob(".plan.json.*.tmp"))
    for path in (Path(plan_path), result, *stray):
        with contextlib.suppress(OSError):
            path.unlink()
    if folder == Path(plan_path).parent and folder.name.startswith("hlthz-replay-"):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _die_with(parent: int, signum: int, last_words: Callable[[], None] | None = None) -> None:
    """Exit when ``parent`` dies (see :mod:`._lifeline`); ``last_words`` runs first."""

    def die(*_: Any) -> None:
        if last_words is not None:
            with contextlib.suppress(Exception):
                last_words()
        os._exit(1)

    if not die_with_parent(parent, signum):
        die()
    if signum != signal.SIGKILL:
        gevent.signal_handler(signum, die)

    def watch() -> None:
        while parent_alive(parent):
            gevent.sleep(_PARENT_POLL)
        die()

    gevent.spawn(watch)


def _pop_option(args: list[str], name: str) -> str | None:
    if name in args:
        index = args.index(name)
        if index + 1 < len(args):
            value = args[index + 1]
            del args[index : index + 2]
            return value
    return None


def main() -> None:
    """``run PLAN RESULT [--parent PID]`` or
    ``worker --master HOST:PORT [--parent PID]``."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    args = sys.argv[1:]
    parent = _pop_option(args, "--parent")
    if args[:1] == ["run"] and len(args) == 3:
        plan_path, result_path = args[1], args[2]
        if parent is not None:
            # SIGTERM, not SIGKILL: the engine removes its files before it goes.
            _die_with(
                int(parent), signal.SIGTERM, lambda: _remove_run_files(plan_path, result_path)
            )
        sys.exit(run_child(plan_path, result_path))
    if args[:1] == ["worker"] and len(args) >= 3 and args[1] == "--master":
        if parent is not None:
            _die_with(int(parent), signal.SIGKILL)  # a worker has nothing to clean up
        worker_main(args[2])
        sys.exit(0)
    sys.exit("usage: run PLAN RESULT [--parent PID] | worker --master HOST:PORT [--parent PID]")
