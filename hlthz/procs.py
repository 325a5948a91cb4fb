"""Start, watch and stop child processes on loopback.

Used by the stack, the demo and the tests alike. Every child runs in its own process group with
its output in a log file, so stopping it stops its children too and a failure can point at a log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from hlthz.errors import ServiceError

LOOPBACK = "127.0.0.1"


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
        if self.ready is not None:
            self._wait_ready(self.ready)
        return self

    def _wait_ready(self, ready: Callable[[], bool]) -> None:
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


@contextlib.contextmanager
def managed(*procs: ManagedProcess) -> Iterator[tuple[ManagedProcess, ...]]:
    """Start ``procs`` in order and stop them in reverse order, also on errors."""
    started: list[ManagedProcess] = []
    try:
        for proc in procs:
            started.append(proc.start())
        yield tuple(started)
    finally:
        for proc in reversed(started):
            proc.stop()
