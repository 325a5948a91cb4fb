"""Fixtures of the replay-engine tests: loopback targets with known delays, capture writers.

The engine runs in child processes (``run_replay`` starts one; the CLI is a process of its own),
so this test process never imports locust and is never monkey-patched by gevent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hlthz.procs import ManagedProcess, free_port, http_ok
from hlthz.replay import CaptureRecord, CaptureWriter

REPO = Path(__file__).resolve().parents[2]
T0_NS = 1_700_000_000_000_000_000


def start_target(log_dir: Path, *, variant: int = 0, slow: float = 1.0) -> ManagedProcess:
    """Start ``target_app`` on a free loopback port; ``proc.url`` is its base URL. ``slow``
    multiplies its ``/delay/`` waits."""
    port = free_port()
    env = {**os.environ, "TARGET_VARIANT": str(variant), "TARGET_SLOW": str(slow)}
    proc = ManagedProcess(
        f"target-{port}",
        [sys.executable, "-m", "tests.replay.target_app", str(port)],
        log_path=log_dir / f"target-{port}.log",
        env=env,
        cwd=REPO,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/count"),
        ready_timeout=30,
    )
    proc.start()
    proc.url = f"http://127.0.0.1:{port}"
    return proc


@pytest.fixture
def target(tmp_path: Path) -> Iterator[ManagedProcess]:
    """A fresh target per test (its counters start at zero)."""
    proc = start_target(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()


def target_seen(url: str) -> dict[str, Any]:
    """What the target served: ``{"methods": {...}, "authorization": [...], "host": [...]}``."""
    with urllib.request.urlopen(f"{url}/count", timeout=5) as response:
        data: dict[str, Any] = json.load(response)
        return data


def write_capture(path: Path, records: Iterable[tuple[float, str, str]], **kw: Any) -> Path:
    """Write a v1 capture of ``(offset_seconds, method, path)`` items (plus optional sessions)."""
    sessions: Callable[[int], str | None] = kw.pop("session", lambda i: None)
    headers = kw.pop("headers", [("accept", "*/*")])
    with CaptureWriter(path, source="test") as writer:
        for i, (offset, method, target_path) in enumerate(records):
            writer.write(
                CaptureRecord(
                    id=str(i),
                    ts_ns=T0_NS + int(offset * 1e9),
                    method=method,
                    path=target_path,
                    headers=list(headers),
                    session=sessions(i),
                )
            )
    return path


def hlthz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``hlthz`` CLI in a child process; returns the completed process (no check)."""
    return subprocess.run(
        [sys.executable, "-c", "from hlthz.tools.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def child_processes(pid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every live child of ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append((int(entry.name), cmdline))
    return out


def files_holding(folder: Path, secret: str) -> list[Path]:
    """Every file under ``folder`` whose bytes contain ``secret``."""
    found = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and secret.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found
