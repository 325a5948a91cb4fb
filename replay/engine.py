"""``run_replay``: replay a :class:`~hlthz.replay.plan.ReplayPlan` and return its report.

This module never imports locust or gevent. It checks the inputs and the target here, then runs
the engine (:mod:`hlthz.replay._locust`) in a child process, so the caller's process, say a test
run or an app with the recording middleware, is never monkey-patched. The child reads the plan
from a file and writes its measurements to another; this side builds the
:class:`~hlthz.replay.report.Report` and writes ``report`` and ``html``.

The plan file may hold header tokens (``--header 'Authorization: ...'``): it is written with
mode 0600 into a folder only this user can open, the child deletes it as soon as it has read
it, and the folder goes on every way out of :func:`run_replay` (return, error, Ctrl-C). The
child dies with this process (``PR_SET_PDEATHSIG`` on Linux, plus a check that its parent is
still the one that started it), and its local workers die with it, so a killed ``hlthz replay
run`` leaves no engine behind; the child then removes the folder itself.

Ctrl-C reaches the child too (or is forwarded to it): it stops sending, waits for in-flight
requests up to the timeout and hands back what it measured, and the partial report is written
with ``run.interrupted`` set.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hlthz.errors import CaptureFormatError, HlthzError, PlanError, ReplayError, TargetError
from hlthz.files import atomic_write, ensure_parent
from hlthz.net import parse_http_url, request_target
from hlthz.replay.plan import ReplayPlan, naming
from hlthz.replay.report import Report, RunInfo


class Target:
    """Where every request goes: scheme, host, port and an optional base path."""

    def __init__(self, url: str, *, what: str = "target") -> None:
        parsed = parse_http_url(url, what=what)
        self.url = url
        self.ssl = parsed.tls
        self.host = parsed.host
        self.port = parsed.port
        self.base = parsed.base
        self.origin = parsed.origin

    def uri(self, captured_path: str) -> str:
        """The request URI for a captured path: absolute URLs are cut to path and query, so
        the target is the only host a replay ever talks to."""
        return self.base + request_target(captured_path)

    def check_reachable(self, timeout: float) -> None:
        """Raise :class:`TargetError` unless the target accepts a TCP connection in time."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise TargetError(
                f"target {self.url} is unreachable ({reason}); check the URL and that the "
                f"service is up"
            ) from None


def child_argv() -> list[str]:
    """The command that runs the engine in a fresh process, importing locust first so gevent
    patches the socket module before anything else touches it."""
    return [sys.executable, "-c", "import locust; from hlthz.replay._locust import main; main()"]


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A JSON-friendly description of a replay error, to carry it across processes."""
    payload: dict[str, Any] = {"kind": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, CaptureFormatError):
        payload.update(path=exc.path, line=exc.line, message=exc.message)
    elif isinstance(exc, PlanError):
        payload.update(field=exc.field, problem=exc.problem)
    return payload


def error_from_payload(payload: dict[str, Any]) -> HlthzError:
    """The error :func:`error_payload` described (a :class:`ReplayError` for other kinds)."""
    kind, message = payload.get("kind"), str(payload.get("message", "replay failed"))
    if kind == "CaptureFormatError":
        return CaptureFormatError(str(payload["path"]), int(payload["line"]), message)
    if kind == "PlanError":
        return PlanError(str(payload["field"]), str(payload["problem"]))
    if kind == "TargetError":
        return TargetError(message)
    return ReplayError(message)


def _check_capture(capture: Path, fmt: str) -> None:
    # Fail fast, in this process, on a missing file or a malformed start.
    if not capture.is_file():
        raise ReplayError(f"{capture}: no such capture file")
    from hlthz.replay.capture.sources import iter_records

    for _ in iter_records(capture, format=fmt):
        break


def run_replay(
    plan: ReplayPlan,
    *,
    report: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
) -> Report:
    """Replay ``plan`` on the open-model timeline and return the report.

    Writes ``report`` (JSON) and ``html`` when given; their folders are made (or refused)
    before anything is sent. Raises :class:`TargetError` when the target is unreachable,
    :class:`CaptureFormatError` for a malformed capture, :class:`PlanError` naming the field
    or parameter for a setting that cannot be used (``master_bind``, ``metrics_port``: the port
    is taken; ``report``, ``html``: cannot be written).
    """
    for capture in plan.captures:
        _check_capture(capture, plan.format)
    for name, output in (("report", report), ("html", html)):
        if output is not None:
            with naming(name):
                ensure_parent(output, what=name)
    Target(plan.target).check_reachable(plan.timeout)
    if plan.baseline is not None:
        Target(plan.baseline, what="baseline").check_reachable(plan.timeout)
    # The child may run in another folder.
    result = _run_child(
        replace(
            plan,
            capture=plan.capture.resolve(),
            more_captures=tuple(p.resolve() for p in plan.more_captures),
        )
    )

    from hlthz.replay.build import build_report
    from hlthz.replay.timing import Recorder

    schedule = plan.schedule
    run = RunInfo(
        name=plan.run_name,
        capture=str(plan.capture),
        target=plan.target,
        speed=schedule.speed,
        rate=schedule.rate,
        duration=schedule.duration,
        loop=schedule.loop,
        max_gap=schedule.max_gap,
        allow_writes=schedule.allow_writes,
        concurrency=plan.concurrency,
        workers=plan.workers + plan.remote_workers,
        started_at=result.get("started_at"),
        interrupted=bool(result["interrupted"]),
        mode="single" if plan.baseline is None else "interleaved",
        block=None if plan.baseline is None else plan.block,
        max_body=plan.max_body,
        deadline=plan.deadline,
    )
    out = build_report(Recorder.from_wire(result["wire"]), result, run)
    side = result.get("baseline")
    if plan.baseline is not None and side is not None:
        base_run = replace(run, target=plan.baseline, name=f"{plan.run_name} (baseline)")
        base_report = build_report(
            Recorder.from_wire(side["wire"]), {**result, "series": side["series"]}, base_run
        )
        out = replace(out, baseline=base_report)
    if report is not None:
        with naming("report"):
            out.write(report, what="report")
    if html is not None:
        from hlthz.replay.html_report import write_html

        with naming("html"):
            write_html(out, html, what="html", baseline=out.baseline)
    if out.summary.requests == 0 and not out.interrupted:
        raise ReplayError(_nothing_sent(out, plan))
    return out


def _nothing_sent(report: Report, plan: ReplayPlan) -> str:
    """Why a replay sent no request, and what to do (the run exits 2: nothing can be judged)."""
    summary = report.summary
    writes = (summary.skipped_by_reason or {}).get("method", 0)
    if writes and writes == summary.skipped:
        return (
            f"nothing was sent: all {writes:,} requests of {plan.capture} are writes "
            f"(POST/PUT/PATCH/DELETE); pass --allow-writes (against a disposable copy of the data)"
        )
    if plan.schedule.duration is not None:
        return (
            f"nothing was sent: --duration {plan.schedule.duration:g} ended the timeline before "
            f"the first request of {plan.capture}; raise it or use --max-gap"
        )
    return f"nothing was sent: {plan.capture} holds no requests to replay"


#: The engine's plan and result files, in a folder of their own (see the module doc).
PLAN_FILE = "plan.json"
RESULT_FILE = "result.json"


def _run_child(plan: ReplayPlan) -> dict[str, Any]:
    # mkdtemp makes the folder 0700; the plan file is 0600 (atomic_write's temporary file is
    # created 0600 too, so the token is never readable by others, not even for a moment).
    with tempfile.TemporaryDirectory(prefix="hlthz-replay-") as tmp:
        plan_path = Path(tmp, PLAN_FILE)
        result_path = Path(tmp, RESULT_FILE)
        atomic_write(plan_path, plan.to_json(), mode=0o600)
        proc = subprocess.Popen(
            [*child_argv(), "run", str(plan_path), str(result_path), "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL,
        )
        try:
            code = _wait(proc, plan.timeout)
        finally:
            # Any other way out (an exception in this thread): the engine must not outlive it.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not result_path.exists():
            raise ReplayError(f"the replay engine exited with code {code} without a result")
        result: dict[str, Any] = json.loads(result_path.read_text())
    if "error" in result:
        raise error_from_payload(result["error"])
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the child too; a programmatic one may not have.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=timeout + 15.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
