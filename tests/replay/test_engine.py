"""The engine against a real loopback server with known behaviour."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hlthz.errors import PlanError, TargetError
from hlthz.procs import ManagedProcess, free_port
from hlthz.replay import ReplayPlan, ScheduleOptions, run_replay
from tests.replay.conftest import REPO, hlthz, target_seen, write_capture


def test_known_delay_reads_as_such_at_p50_and_p99(tmp_path: Path, target: ManagedProcess) -> None:
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.02, "GET", "/delay/50") for i in range(100)]
    )
    report = run_replay(ReplayPlan(capture, target.url), report=tmp_path / "r.json")
    s = report.summary
    assert s.requests == 100 and s.errors == 0
    # From the scheduled time, a 50 ms handler can never read below 50 ms; timing from the wrong
    # instant (before scheduling, after a queue, in the wrong unit) lands outside these bounds.
    # The upper bounds leave room for a busy CI machine, not for a wrong clock.
    assert 50 <= s.latency_ms.p50 <= 100
    assert 50 <= s.latency_ms.p99 <= 300
    assert 50 <= s.service_time_ms.p50 <= s.latency_ms.p50
    assert s.schedule_lag_ms.p99 < 250
    route = report.routes[0]
    assert (route.key, route.method, route.route) == ("GET /delay/{id}", "GET", "/delay/{id}")
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["summary"]["requests"] == 100
    assert written["routes"][0]["route"] == "GET /delay/{id}"


def test_stall_shows_in_scheduled_latency_while_a_closed_model_hides_it(
    tmp_path: Path, target: ManagedProcess
) -> None:
    # 10 requests/s for 5 s; at 1 s the target freezes for one second. With one request in
    # flight at a time (a closed-model tool with one connection) the requests due during the
    # stall cannot be sent: their service time is short, only the scheduled-time latency
    # shows that users waited.
    records = [(i * 0.1, "GET", "/delay/5") for i in range(50)]
    records.insert(10, (0.95, "GET", "/stall?seconds=1"))
    capture = write_capture(tmp_path / "c.jsonl", records)
    report = run_replay(ReplayPlan(capture, target.url, concurrency=1))
    s = report.summary
    assert s.requests == 51
    assert s.latency_ms.p90 >= 300  # ~10 of 51 requests waited up to a second
    assert s.service_time_ms.p90 < 250  # what a closed-model tool would report
    assert s.cap_hits
    assert any("concurrency cap" in w for w in report.warnings)
    worst = max(report.series, key=lambda p: p.p99_ms)
    assert 0 <= worst.t <= 2 and worst.p99_ms >= 500


def test_writes_are_skipped_headers_rewritten_and_urls_kept_on_the_target(
    tmp_path: Path, target: ManagedProcess
) -> None:
    records = [
        (0.0, "GET", "/delay/1"),
        (0.01, "POST", "/delay/1"),
        (0.02, "GET", "http://elsewhere.invalid/delay/1?x=1"),
        (0.03, "HEAD", "/delay/1"),
    ]
    capture = write_capture(
        tmp_path / "c.jsonl", records, headers=[("authorization", "Bearer old"), ("host", "prod")]
    )
    plan = ReplayPlan(capture, target.url, headers=(("Authorization", "Bearer new"),))
    report = run_replay(plan)
    assert report.summary.requests == 3
    assert report.summary.skipped == 1
    seen = target_seen(target.url)
    assert seen["methods"] == {"GET": 2, "HEAD": 1}
    assert seen["authorization"] == ["Bearer new"]
    assert seen["host"] == [target.url.removeprefix("http://")]
    run_replay(ReplayPlan(capture, target.url, schedule=ScheduleOptions(allow_writes=True)))
    assert target_seen(target.url)["methods"]["POST"] == 1


def test_errors_count_5xx_and_transport_failures(tmp_path: Path, target: ManagedProcess) -> None:
    records = [(0.0, "GET", "/flaky"), (0.01, "GET", "/delay/1"), (0.02, "GET", "/delay/3000")]
    capture = write_capture(tmp_path / "c.jsonl", records)
    report = run_replay(ReplayPlan(capture, target.url, timeout=0.5))
    s = report.summary
    assert (s.requests, s.errors) == (3, 2)
    assert s.status_classes == {"2xx": 1, "5xx": 1, "error": 1}


def test_unreachable_target_is_a_clear_error_with_exit_2(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    port = free_port()
    with pytest.raises(TargetError, match="unreachable"):
        run_replay(ReplayPlan(capture, f"http://127.0.0.1:{port}", timeout=1))
    done = hlthz(
        "replay", "run", str(capture), "--target", f"http://127.0.0.1:{port}", "--timeout", "1"
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("hlthz: error: target http://127.0.0.1:")
        and "Traceback" not in done.stderr
    )


def test_unwritable_report_path_fails_before_the_run(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    blocker = tmp_path / "file"
    blocker.write_text("")
    unreachable = f"http://127.0.0.1:{free_port()}"
    for name in ("report", "html"):
        # The target is unreachable too: the output check comes first, before any work.
        with pytest.raises(PlanError, match=f"^{name}: .*: cannot create its directory") as raised:
            run_replay(ReplayPlan(capture, unreachable), **{name: blocker / "r.json"})  # type: ignore[arg-type]
        assert raised.value.field == name
        # The command names its option instead.
        done = hlthz(
            "replay",
            "run",
            str(capture),
            "--target",
            unreachable,
            f"--{name}",
            str(blocker / "r.json"),
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"hlthz: error: --{name} {blocker / 'r.json'}: cannot create")


def test_invalid_capture_names_file_and_line_with_exit_2(
    tmp_path: Path, target: ManagedProcess
) -> None:
    capture = write_capture(
        tmp_path / "c.jsonl", [(0.0, "GET", "/delay/1"), (0.01, "GET", "/delay/1")]
    )
    with capture.open("a") as handle:
        handle.write('{"id": "x", "ts_ns": "soon"}\n')
        handle.write('{"id": "y", "ts_ns": 1}\n')
    done = hlthz("replay", "run", str(capture), "--target", target.url)
    assert done.returncode == 2, done.stderr
    assert f"{capture}:4:" in done.stderr and "Traceback" not in done.stderr


def test_ctrl_c_writes_the_partial_report(tmp_path: Path, target: ManagedProcess) -> None:
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.05, "GET", "/delay/1") for i in range(400)]
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
            target.url,
            "--report",
            str(report),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C signals the whole group: do the same
    )
    time.sleep(3)
    import os

    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    data = json.loads(report.read_text())
    assert data["run"]["interrupted"] is True
    assert 0 < data["summary"]["requests"] < 400


_REQUESTS = 'hlthz_replay_requests_total{route="GET /delay/{id}",run="rc1",status_class="2xx"}'


def test_live_metrics_while_running(tmp_path: Path, target: ManagedProcess) -> None:
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.05, "GET", "/delay/2") for i in range(60)]
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hlthz.tools.cli import main; main()",
            "replay",
            "run",
            str(capture),
            "--target",
            target.url,
            "--metrics-port",
            str(port),
            "--name",
            "rc1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    text = ""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    text = r.read().decode()
                if _REQUESTS in text:
                    break
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        proc.wait(timeout=30)
    assert _REQUESTS in text
    assert (
        'hlthz_replay_latency_seconds_bucket{le="+Inf",route="GET /delay/{id}",run="rc1"}' in text
    )
    assert 'hlthz_replay_service_time_seconds_count{route="GET /delay/{id}",run="rc1"}' in text
    assert 'hlthz_replay_schedule_lag_seconds_count{run="rc1"}' in text
    assert 'hlthz_replay_in_flight{run="rc1"}' in text
    assert 'hlthz_replay_skipped_total{reason="method",run="rc1"}' in text
