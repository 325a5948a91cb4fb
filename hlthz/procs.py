"""Start, watch and stop processes: the one place HLTHZ does it.

Used by the stack, the demo, the replay engine and the tests alike. Every child runs in its own
process group with its output in a log file, so stopping it stops its children too and a failure
can point at a log. :class:`ManagedProcess` is one child; :class:`ProcessGroup` starts several
and stops them in reverse order (a failed start-up rolls back what came before it);
:func:`stop_pid` stops a process another ``hlthz`` started (``hlthz stack down``), guarding
against a reused pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hlthz.errors import ServiceError
from hlthz.net import LOOPBACK

__all__ = [
    "LOOPBACK",
    "ManagedProcess",
    "ProcessGroup",
    "free_port",
    "hlthz_command",
    "http_ok",
    "pid_alive",
    "port_open",
    "runs_command",
    "stop_pid",
    "wait_until",
]


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Call ``check`` until it returns true; raise :class:`ServiceError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() >= deadline:
            raise ServiceError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class ManagedProcess:
    """A child process in its own process group, logging to ``log_path``.

    Use as a context manager, or call :meth:`stop` yourself. ``ready`` is polled after start
    until it returns true; if the process exits first, the error quotes the log's tail.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
        ready_timeout: float = 30.0,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        # A Python child writing to a file buffers its stdout until it exits: its log (and the
        # tail an error quotes) would stay empty while it runs.
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = cwd
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None
        #: Where the service answers, when it serves something (set by its starter).
        self.url = ""

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ServiceError(f"{self.name} is not running")
        return self.popen.pid

    def start(self) -> ManagedProcess:
        """Launch the process and wait until it is ready (see :meth:`launch`)."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> ManagedProcess:
        """Start the process without waiting for readiness (:meth:`wait_ready` does that)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                # Dropping to another user drops root's groups too.
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"{self.name}: cannot run {self.argv[0]!r}: {exc.strerror}") from exc
        finally:
            log.close()
        return self

    def wait_ready(self) -> None:
        """Poll ``ready`` until it returns true; :class:`ServiceError` quoting the log's tail
        when the process exits first or ``ready_timeout`` passes (the process is stopped)."""
        ready = self.ready
        if ready is None:
            return
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ServiceError(
                    f"{self.name} exited with code {self.returncode()} during start-up; "
                    f"see {self.log_path}: {self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(
            f"{self.name} was not ready after {self.ready_timeout:g} s; see {self.log_path}: "
            f"{self.log_tail()}"
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout`` s."""
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=timeout)
        self._kill_orphans(self.popen.pid)

    @staticmethod
    def _kill_orphans(pgid: int) -> None:
        # The group may outlive its leader (workers of a pre-fork server). The leader is reaped
        # by now, so its pid may have been reused; but Linux keeps the number while any group
        # member holds it as a pgid. So a live process with that pid means our group is gone
        # and the number belongs to someone else: leave it alone.
        try:
            os.kill(pgid, 0)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        except PermissionError:
            pass

    def __enter__(self) -> ManagedProcess:
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessGroup:
    """Processes started together and stopped together, last started first.

    :meth:`start` registers a process before waiting for it, so a start-up that fails or is
    interrupted half-way is still stopped by :meth:`stop_all`. As a context manager the group
    stops everything when the block ends.
    """

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(self, proc: ManagedProcess) -> ManagedProcess:
        """Launch ``proc``, add it to the group, then wait until it is ready."""
        proc.launch()
        self.processes.append(proc)
        proc.wait_ready()
        return proc

    def stop_all(self) -> None:
        """Stop every process, last started first; one failing to stop does not keep the
        others running."""
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                proc.stop()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def hlthz_command() -> list[str]:
    """The argv prefix that runs this installation's ``hlthz`` CLI."""
    script = Path(sys.executable).parent / "hlthz"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from hlthz.tools.cli import main; sys.exit(main())"]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state is the field after the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def runs_command(pid: int, argv: Sequence[str]) -> bool:
    """Guard against pid reuse: ``pid`` must still run the command that was started.

    The kernel runs a ``#!`` script as ``interpreter script args...``, so the started argv is
    matched as the tail of ``/proc/PID/cmdline``; a process that rewrote its title still
    matches by program name.
    """
    if not pid_alive(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    cmdline = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if not cmdline:
        return False
    if cmdline[-len(argv) :] == list(argv):
        return True
    program = os.path.basename(argv[0])
    return any(os.path.basename(part) == program for part in cmdline[:2])


def _reap(pid: int) -> None:
    # A process this one started must be reaped, or it lingers as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, argv: Sequence[str], timeout: float) -> bool:
    """SIGTERM ``pid``'s process group, SIGKILL after ``timeout``; True when it was running.

    Nothing is signalled unless ``pid`` still runs ``argv`` (:func:`runs_command`)."""
    if not runs_command(pid, argv):
        _reap(pid)
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for _ in range(100):
            _reap(pid)
            if not pid_alive(pid):
                break
            time.sleep(0.05)
    # Children of a pre-fork server may outlive their leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)
    return True
