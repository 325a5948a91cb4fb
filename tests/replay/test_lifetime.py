"""The engine's plan file holds header tokens: private, short-lived, never left behind; and the
engine (and its local workers) die with the process that started them, even a SIGKILLed one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hlthz.errors import ReplayError
from hlthz.procs import ManagedProcess
from hlthz.replay import ReplayPlan, engine
from hlthz.replay.engine import child_argv
from tests.procs import leftover_groups
from tests.replay.conftest import (
    REPO,
    child_processes,
    files_holding,
    target_seen,
    write_capture,
)

TOKEN = "Bearer s3cr3t-t0ken-for-the-lifetime-test"
CLI = [sys.executable, "-c", "from hlthz.tools.cli import main; main()"]


def _wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _cli(tmpdir: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    """``hlthz`` with its temporary files in ``tmpdir`` (TMPDIR), in a session of its own."""
    return subprocess.Popen(
        [*CLI, *args],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,  # type: ignore[arg-type]
    )


def test_the_plan_file_is_0600_in_a_0700_folder_and_the_folder_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in child reports what it was given: the modes of the plan file and its folder.
    spy = (
        "import json, os, stat, sys\n"
        "plan, result = sys.argv[2], sys.argv[3]\n"
        "modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (plan, os.path.dirname(plan))]\n"
        "secret = 's3cr3t' in open(plan).read()\n"
        "message = f'modes {modes[0]:o} {modes[1]:o} secret {secret}'\n"
        "json.dump({'error': {'kind': 'ReplayError', 'message': message}}, open(result, 'w'))\n"
    )
    monkeypatch.setattr(engine, "child_argv", lambda: [sys.executable, "-c", spy])
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    plan = ReplayPlan(capture, "http://127.0.0.1:9", headers=(("Authorization", TOKEN),))
    with pytest.raises(ReplayError, match=r"^modes 600 700 secret True$"):
        engine._run_child(plan)
    assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl"]


def test_an_orphaned_engine_deletes_its_plan_and_exits(tmp_path: Path) -> None:
    # Its parent died before it could ask to die with it (pid 1 is never its parent here).
    folder = tmp_path / "hlthz-replay-orphan"
    folder.mkdir(mode=0o700)
    plan_file = folder / "plan.json"
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    plan = ReplayPlan(capture, "http://127.0.0.1:9", headers=(("Authorization", TOKEN),))
    plan_file.write_text(plan.to_json())
    done = subprocess.run(
        [*child_argv(), "run", str(plan_file), str(folder / "result.json"), "--parent", "1"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert not folder.exists()  # plan gone, no result, folder removed


@pytest.mark.parametrize("outcome", ["normal", "error"])
def test_no_token_is_left_behind_after_a_run(
    tmp_path: Path, target: ManagedProcess, outcome: str
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    capture = write_capture(tmp_path / "c.jsonl", [(i * 0.01, "GET", "/delay/1") for i in range(5)])
    if outcome == "error":  # the engine fails on line 7, after the parent's first look
        with capture.open("a") as handle:
            handle.write('{"id": "x", "ts_ns": "soon"}\n')
    proc = _cli(tmpdir, "replay", "run", str(capture), "--target", target.url, "--header",
                f"Authorization: {TOKEN}")  # fmt: skip
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == (0 if outcome == "normal" else 2), stderr
    assert TOKEN not in stderr
    assert files_holding(tmpdir, "s3cr3t") == [] and list(tmpdir.iterdir()) == []
    if outcome == "normal":
        seen = target_seen(target.url)
        assert seen["authorization"] == [TOKEN] and seen["methods"] == {"GET": 5}


@pytest.mark.slow
def test_sigkilled_replay_leaves_no_engine_workers_or_token(
    tmp_path: Path, target: ManagedProcess
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.05, "GET", "/delay/1") for i in range(20)]
    )
    proc = _cli(tmpdir, "replay", "run", str(capture), "--target", target.url, "--loop",
                "--workers", "1", "--header", f"Authorization: {TOKEN}")  # fmt: skip
    leaders = [proc.pid]
    try:
        # Running for real: the worker's requests (with the token) reach the target.
        _wait_for(lambda: target_seen(target.url)["authorization"], 60, "replayed requests")
        engines = [pid for pid, cmd in child_processes(proc.pid) if "hlthz.replay._locust" in cmd]
        assert len(engines) == 1, child_processes(proc.pid)
        workers = [pid for pid, cmd in child_processes(engines[0]) if " worker --master " in cmd]
        assert len(workers) == 1
        leaders += workers  # each local worker runs in a session of its own
        assert target_seen(target.url)["authorization"] == [TOKEN]

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_for(lambda: not leftover_groups(leaders), 30, "the engine and its workers to exit")
        _wait_for(lambda: not list(tmpdir.iterdir()), 10, "the engine's folder to go")
        assert files_holding(tmpdir, "s3cr3t") == []
        # Nothing sends any more: the count stays put.
        sent = target_seen(target.url)["methods"]["GET"]
        time.sleep(1.0)
        assert target_seen(target.url)["methods"]["GET"] == sent
    finally:
        for pgid in leftover_groups(leaders):
            os.killpg(pgid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_leaves_no_token_behind(tmp_path: Path, target: ManagedProcess) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/delay/1")])
    report = tmp_path / "r.json"
    proc = _cli(tmpdir, "replay", "run", str(capture), "--target", target.url, "--loop",
                "--header", f"Authorization: {TOKEN}", "--report", str(report))  # fmt: skip
    try:
        _wait_for(lambda: target_seen(target.url)["authorization"], 60, "replayed requests")
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C signals the whole group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert json.loads(report.read_text())["run"]["interrupted"] is True
    assert not leftover_groups([proc.pid])
    assert files_holding(tmpdir, "s3cr3t") == [] and list(tmpdir.iterdir()) == []
