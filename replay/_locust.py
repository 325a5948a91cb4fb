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

The sending itself (the open model: each request started when it is due, sessions kept in
order, the concurrency cap) is :class:`hlthz.replay._sender.Sender`; this module runs it in a
process, or in a master and its workers, and writes the result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue

from hlthz.errors import HlthzError, PlanError, ReplayError
from hlthz.files import atomic_write
from hlthz.net import format_host_port, parse_host_port
from hlthz.replay._lifeline import die_with_parent, parent_alive
from hlthz.replay._sender import Fingerprint, Sender, open_records
from hlthz.replay._stream import Feed, Streamer
from hlthz.replay.engine import child_argv, error_from_payload, error_payload
from hlthz.replay.plan import ReplayPlan
from hlthz.replay.schedule import schedule
from hlthz.replay.timing import Recorder, encode

_log = logging.getLogger("hlthz.replay")

#: How often a worker ships its measurements to the master (seconds).
_SHIP_INTERVAL = 1.0
_WORKER_READY_TIMEOUT = 60.0
#: How often a child checks that its parent is alive (besides the kernel's notice on Linux).
_PARENT_POLL = 0.5


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
        records = Fingerprint(open_records(plan, recorder.skip, lambda: recorder.notes))
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
