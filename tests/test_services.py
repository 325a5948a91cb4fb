"""The service fixtures start real servers that answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hlthz.errors import ServiceError
from hlthz.procs import (
    ManagedProcess,
    ProcessGroup,
    pid_alive,
    runs_command,
    stop_pid,
    wait_until,
)
from tests.conftest import need_binary, prom_query


def test_redis_answers(redis_url: str) -> None:
    port = urlparse(redis_url).port
    assert port
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16).startswith(b"+PONG")


def test_postgres_answers(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        assert conn.execute("select 1 + 1").fetchone() == (2,)


def test_prometheus_scrapes_itself(prometheus) -> None:  # type: ignore[no-untyped-def]
    proc = prometheus(scrape_configs=[])
    port = urlparse(proc.url).port
    proc2 = prometheus(targets=[f"127.0.0.1:{port}"], job="self")
    deadline = time.monotonic() + 20
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline and not result:
        result = prom_query(proc2.url, 'up{job="self"} == 1')
        time.sleep(0.3)
    assert result, "Prometheus never scraped its target"


def test_a_python_child_logs_while_it_runs(tmp_path: Path) -> None:
    # print() to a file is block-buffered: without PYTHONUNBUFFERED the line would reach the
    # log only when the child exits (the demo's interrupt test waited on such a log).
    log = tmp_path / "child.log"
    code = "import time\nprint('serving', flush=False)\ntime.sleep(60)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    argv = [sys.executable, "-c", code]
    with ManagedProcess("child", argv, log_path=log, env=env) as proc:
        wait_until(lambda: log.read_bytes() == b"serving\n", timeout=20, what="the first line")
        assert proc.popen is not None and proc.popen.poll() is None


def test_stop_kills_workers_that_outlive_their_leader(tmp_path: Path) -> None:

    pid_file = tmp_path / "worker.pid"
    # The leader starts a worker in its own group that ignores SIGTERM, then exits at once.
    code = (
        "import os, signal, subprocess, sys, time\n"
        "w = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(w.pid))\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("leader", [sys.executable, "-c", code], log_path=tmp_path / "l.log")
    proc.start()
    wait_until(pid_file.exists, timeout=20, what="the worker")
    worker = int(pid_file.read_text())
    proc.stop(timeout=2)

    def gone() -> bool:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for init to reap it is gone too.
        with open(f"/proc/{worker}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"

    wait_until(gone, timeout=10, what="the orphaned worker to die")


def test_stop_leaves_a_reused_pid_alone() -> None:
    # A live process whose pid equals the (reaped) leader's pid must not be signalled.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                 start_new_session=True)  # fmt: skip
    try:
        ManagedProcess._kill_orphans(bystander.pid)
        assert bystander.poll() is None
        os.kill(bystander.pid, 0)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_failed_start_up_rolls_back_the_whole_group(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    group = ProcessGroup()
    first = group.start(ManagedProcess("first", sleeper, log_path=tmp_path / "first.log"))
    broken = ManagedProcess(
        "broken",
        [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"],
        log_path=tmp_path / "broken.log",
        ready=lambda: False,
    )
    with pytest.raises(
        ServiceError, match=r"^broken exited with code 3 during start-up.*bad config"
    ):
        group.start(broken)
    # Registered before its readiness wait: the failed one is in the group, to be cleaned up.
    assert [p.name for p in group.processes] == ["first", "broken"]
    group.stop_all()
    assert not pid_alive(first.pid)


def test_stop_pid_stops_what_another_process_started_and_only_that(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = ManagedProcess("detached", argv, log_path=tmp_path / "d.log").start()
    assert runs_command(proc.pid, argv)
    assert not stop_pid(proc.pid, ["/bin/sleep", "60"], timeout=5)
    assert pid_alive(proc.pid)  # another program: the pid was reused, not ours to stop
    assert stop_pid(proc.pid, argv, timeout=5)
    assert not pid_alive(proc.pid)
    assert not stop_pid(proc.pid, argv, timeout=5)  # already gone


def test_a_port_another_server_took_is_not_mistaken_for_alertmanager(tmp_path: Path) -> None:
    """A port picked free can be taken by another program before Alertmanager binds it. That
    program's ``/-/ready`` (here: a server answering 200 to anything) must not pass for
    Alertmanager's: the start fails, naming Alertmanager's own log."""
    import http.server
    import threading

    from hlthz.tools.stack.services import start_alertmanager

    need_binary("prometheus-alertmanager", "alertmanager")

    class Anything(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/-/ready"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Anything)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    config = tmp_path / "am.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    try:
        with pytest.raises(ServiceError, match=r"^alertmanager exited with code \d+ during"):
            start_alertmanager(config, tmp_path, port=impostor.server_address[1]).stop()
    finally:
        impostor.shutdown()
        impostor.server_close()
