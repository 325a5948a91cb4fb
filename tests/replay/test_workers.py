"""Distributed replay: a locust master and worker processes, merged exactly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hlthz.errors import PlanError
from hlthz.procs import free_port
from hlthz.replay import ReplayPlan, run_replay
from hlthz.replay.timing import decode, new_histogram
from tests.replay.conftest import REPO, child_processes, write_capture


@pytest.mark.slow
def test_two_workers_send_the_same_requests_and_merge_histograms_exactly(
    tmp_path: Path, target: object
) -> None:
    url = target.url  # type: ignore[attr-defined]
    records = [(i * 0.01, "GET", f"/delay/{5 + i % 3}") for i in range(240)]
    capture = write_capture(tmp_path / "c.jsonl", records, session=lambda i: f"user-{i % 17}")
    single = run_replay(ReplayPlan(capture, url))
    double = run_replay(ReplayPlan(capture, url, workers=2))
    assert single.summary.requests == double.summary.requests == 240
    assert [r.requests for r in single.routes] == [r.requests for r in double.routes]
    workers = double.workers
    assert workers is not None and workers.shards is not None
    assert (workers.expected, workers.finished, workers.lost) == (2, 2, ())
    shards = workers.shards
    assert sum(shard.sent or 0 for shard in shards) == 240 and all(shard.sent for shard in shards)
    # The report's histogram is exactly the sum of the shards' histograms.
    merged = new_histogram()
    for shard in shards:
        assert shard.latency_hdr is not None
        merged.add(decode(shard.latency_hdr))
    assert double.histograms is not None and double.histograms.latency is not None
    report_hist = decode(double.histograms.latency)
    assert merged.get_total_count() == report_hist.get_total_count() == 240
    for pct in (50, 90, 99, 100):
        assert merged.get_value_at_percentile(pct) == report_hist.get_value_at_percentile(pct)


@pytest.mark.slow
def test_a_lost_worker_is_reported_with_its_missing_share(tmp_path: Path, target: object) -> None:
    url = target.url  # type: ignore[attr-defined]
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.02, "GET", "/delay/2") for i in range(300)]
    )
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hlthz.tools.cli import main; main()",
            "replay",
            "run",
            str(capture),
            "--target",
            url,
            "--workers",
            "2",
            "--report",
            str(report),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = None
        deadline = time.monotonic() + 20
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for engine_pid, _ in child_processes(proc.pid):
                workers = [
                    pid for pid, cmd in child_processes(engine_pid) if " worker --master " in cmd
                ]
                if len(workers) == 2:
                    victim = workers[0]
        assert victim is not None, "no worker processes found"
        # Kill it once it is sending (connected to the target), not while it starts up.
        target_port = int(url.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            c.raddr and c.raddr.port == target_port
            for c in psutil.Process(victim).net_connections()
        ):
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    data = json.loads(report.read_text())
    assert data["workers"]["finished"] == 1 and len(data["workers"]["lost"]) == 1
    assert data["workers"]["missing_share"] == 0.5
    shards = data["workers"]["shards"]
    # The master shipped the requests; what it could not ship to the lost one is counted.
    assert all(shard["shipped"] > 0 for shard in shards)
    assert sum(shard["shipped"] + shard["unsent"] for shard in shards) == 300
    assert any("lost mid-run" in w for w in data["warnings"])
    assert 0 < data["summary"]["requests"] < 300


def test_hlthz_replay_worker_joins_a_master(tmp_path: Path, target: object) -> None:
    url = target.url  # type: ignore[attr-defined]
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.01, "GET", "/delay/1") for i in range(50)]
    )
    report = tmp_path / "r.json"
    port = free_port()
    cli = [sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay"]
    master = subprocess.Popen(
        [
            *cli,
            "run",
            str(capture),
            "--target",
            url,
            "--remote-workers",
            "1",
            "--master-bind",
            f"127.0.0.1:{port}",
            "--report",
            str(report),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = subprocess.Popen(
        [*cli, "worker", "--master", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = master.communicate(timeout=60)
        worker.wait(timeout=30)
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
    assert master.returncode == 0, stderr
    assert worker.returncode == 0
    data = json.loads(report.read_text())
    assert data["summary"]["requests"] == 50
    assert data["workers"]["expected"] == data["workers"]["finished"] == 1


def test_bad_master_addresses_are_one_line_errors(tmp_path: Path, target: object) -> None:
    url = target.url  # type: ignore[attr-defined]
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/delay/1")])
    with pytest.raises(PlanError, match=r"^master_bind: 'nohost': give HOST:PORT"):
        ReplayPlan(capture, url, workers=1, master_bind="nohost")
    cli = [sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay"]
    done = subprocess.run(
        [*cli, "run", str(capture), "--target", url, "--workers", "1", "--master-bind", "nohost"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("hlthz: error: --master-bind 'nohost': give HOST:PORT")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        # Used to end as "the replay engine exited with code 1 without a result".
        with pytest.raises(PlanError, match=rf"^master_bind: {taken}: cannot listen") as raised:
            run_replay(ReplayPlan(capture, url, workers=1, master_bind=taken))
        assert raised.value.field == "master_bind"
    done = subprocess.run(
        [*cli, "worker", "--master", "nohost"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("hlthz: error: --master 'nohost'")
