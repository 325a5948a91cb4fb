"""``run_replay``: replay a capture against a target and return the report.

This module never imports locust or gevent. It checks the inputs and the target here, then runs
the engine (:mod:`hlthz.replay._locust`) in a child process, so the caller's process, say a test
run or an app with the recording middleware, is never monkey-patched. The child writes its
measurements to a file; this side builds the report, writes ``--report`` and ``--html``.

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hlthz.errors import CaptureFormatError, HlthzError, ReplayError, TargetError
from hlthz.net import parse_host_port, parse_http_url, request_target
from hlthz.replay.schedule import ScheduleOptions
from hlthz.routes import Routes

#: Requests in flight at most (per process); more due requests wait for a slot, and say so.
DEFAULT_CONCURRENCY = 1000


class Target:
    """Where every request goes: scheme, host, port and an optional base path."""

    def __init__(self, url: str, *, what: str = "--target") -> None:
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
                f"target {self.url} is unreachable ({reason}); check --target and that the "
                f"service is up"
            ) from None


def parse_header(text: str) -> tuple[str, str]:
    """``'Authorization: Bearer x'`` -> ``("Authorization", "Bearer x")``; ``'K:'`` removes K."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
        raise ReplayError(f"--header {text!r}: write it as 'Name: value' ('Name:' removes it)")
    return name.strip(), value.strip()


def child_argv() -> list[str]:
    """The command that runs the engine in a fresh process, importing locust first so gevent
    patches the socket module before anything else touches it."""
    return [sys.executable, "-c", "import locust; from hlthz.replay._locust import main; main()"]


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A JSON-friendly description of a replay error, to carry it across processes."""
    payload: dict[str, Any] = {"kind": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, CaptureFormatError):
        payload.update(path=exc.path, line=exc.line, message=exc.message)
    return payload


def error_from_payload(payload: dict[str, Any]) -> HlthzError:
    """The error :func:`error_payload` described (a :class:`ReplayError` for other kinds)."""
    kind, message = payload.get("kind"), str(payload.get("message", "replay failed"))
    if kind == "CaptureFormatError":
        return CaptureFormatError(str(payload["path"]), int(payload["line"]), message)
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


def check_output(option: str, path: str | os.PathLike[str]) -> None:
    """Fail before the work, not after it: make ``path``'s directory or say why it cannot be."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReplayError(
            f"{option} {path}: cannot create its directory ({exc.strerror or exc})"
        ) from None


def write_output(option: str, path: str | os.PathLike[str], write: Callable[[], object]) -> None:
    """Run ``write`` (which writes ``path``); an OS error becomes one line naming the option."""
    try:
        write()
    except OSError as exc:
        raise ReplayError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None


def run_replay(
    capture: str | os.PathLike[str],
    target: str,
    *,
    speed: float = 1.0,
    rate: float | None = None,
    duration: float | None = None,
    loop: bool = False,
    max_gap: float | None = None,
    allow_writes: bool = False,
    headers: Iterable[str | tuple[str, str]] = (),
    timeout: float = 10.0,
    workers: int = 0,
    report: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
    name: str | None = None,
    progress: bool = True,
    metrics_port: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    format: str = "auto",
    master_bind: str | None = None,
    remote_workers: int = 0,
    insecure: bool = False,
    routes: Routes | None = None,
) -> dict[str, Any]:
    """Replay ``capture`` against ``target`` on the open-model timeline; return the report.

    ``speed`` scales captured time, or ``rate`` sends evenly at that many requests/s;
    ``duration`` caps the replay (seconds) and ``loop`` repeats the capture; ``max_gap`` squeezes
    idle stretches; writes (not GET/HEAD/OPTIONS) are skipped unless ``allow_writes``;
    ``headers`` (``'Name: value'``) replace captured ones; ``timeout`` bounds each request;
    ``workers`` > 0 runs a locust master with that many local worker processes, and
    ``remote_workers`` more may join at ``master_bind`` (``HOST:PORT``) with
    ``hlthz replay worker``; ``concurrency`` caps requests in flight per process;
    ``metrics_port`` serves the replay's own /metrics on 127.0.0.1; ``insecure`` skips TLS
    certificate checks of an https target; ``routes`` names the report's routes (default: path
    normalization, :class:`hlthz.routes.Routes`).
    Writes ``report`` (JSON) and ``html`` when given. Raises :class:`TargetError` when the
    target is unreachable, :class:`CaptureFormatError` for a malformed capture.
    """
    options = ScheduleOptions(
        speed=speed,
        rate=rate,
        duration=duration,
        loop=loop,
        max_gap=max_gap,
        allow_writes=allow_writes,
    )
    options.validate()
    if not timeout > 0:
        raise ReplayError(f"--timeout must be > 0 seconds, got {timeout:g}")
    if workers < 0 or remote_workers < 0:
        raise ReplayError("--workers must be >= 0")
    if concurrency < 1:
        raise ReplayError(f"--concurrency must be >= 1, got {concurrency}")
    if master_bind is not None:
        parse_host_port(master_bind, what="--master-bind", allow_port_zero=True)
    pairs = [parse_header(h) if isinstance(h, str) else (h[0], h[1]) for h in headers]
    capture_path = Path(capture)
    _check_capture(capture_path, format)
    for option, output in (("--report", report), ("--html", html)):
        if output is not None:
            check_output(option, output)
    endpoint = Target(target)
    endpoint.check_reachable(timeout)
    run_name = name or capture_path.name.split(".")[0]
    schedule_settings: dict[str, Any] = {
        "speed": speed,
        "rate": rate,
        "duration": duration,
        "loop": loop,
        "max_gap": max_gap,
        "allow_writes": allow_writes,
    }
    config: dict[str, Any] = {
        "capture": str(capture_path.resolve()),
        "format": format,
        "target": target,
        "schedule": schedule_settings,
        "headers": pairs,
        "timeout": timeout,
        "concurrency": concurrency,
        "workers": workers,
        "remote_workers": remote_workers,
        "master_bind": master_bind,
        "name": run_name,
        "progress": progress,
        "metrics_port": metrics_port,
        "insecure": insecure,
        "routes": routes.templates if routes is not None else [],
    }
    result = _run_child(config)

    from hlthz.replay.report import build_report, write_report
    from hlthz.replay.timing import Recorder

    recorder = Recorder.from_wire(result["wire"])
    run = {
        "name": run_name,
        "capture": str(capture_path),
        "target": target,
        **schedule_settings,
        "concurrency": concurrency,
        "workers": workers + remote_workers,
    }
    out = build_report(recorder, result, run)
    if report is not None:
        write_output("--report", report, lambda: write_report(out, report))
    if html is not None:
        from hlthz.replay.html_report import write_html

        write_output("--html", html, lambda: write_html(out, html))
    return out


def _run_child(config: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hlthz-replay-") as tmp:
        config_path = Path(tmp, "config.json")
        result_path = Path(tmp, "result.json")
        config_path.write_text(json.dumps(config))
        proc = subprocess.Popen(
            [*child_argv(), "run", str(config_path), str(result_path)], stdin=subprocess.DEVNULL
        )
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reached the child too; a programmatic one may not have.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=float(config["timeout"]) + 15.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if not result_path.exists():
            raise ReplayError(f"the replay engine exited with code {code} without a result")
        result: dict[str, Any] = json.loads(result_path.read_text())
    if "error" in result:
        raise error_from_payload(result["error"])
    return result
