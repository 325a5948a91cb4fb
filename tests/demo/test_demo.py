"""``hlthz demo``: the whole story runs, writes its summary, and leaves no process behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.procs import leftover_groups

# Judges timing: make test runs it alone, after the parallel part (pyproject: serial).
pytestmark = pytest.mark.serial

HLTHZ = [sys.executable, "-c", "from hlthz.tools.cli import main; main()"]
SUMMARY_KEYS = ("p95_ms", "avg_ms", "error_rate", "queries_per_request", "cache_hit_rate")


def _assert_all_gone(manifest: list[dict[str, Any]]) -> None:
    assert leftover_groups(p["pid"] for p in manifest) == {}


@pytest.mark.slow
@pytest.mark.integration
def test_demo_quick_tells_the_story_and_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            *HLTHZ,
            "demo",
            "--quick",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            "--optimization",
            "background_jobs",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    for profile in ("before", "after"):
        figures = summary[profile]
        for key in SUMMARY_KEYS:
            assert isinstance(figures[key], int | float), (profile, key, figures[key])
        assert figures["requests"] == summary["capture"]["records"]
        assert 0.0 <= figures["error_rate"] <= 1.0
        assert 0.0 <= figures["cache_hit_rate"] <= 1.0
    before, after = summary["before"], summary["after"]
    # The story's evidence, counted by the exporter: the N+1 listing is gone, the cache works.
    assert before["n_plus_one"] > 0
    assert after["n_plus_one"] == 0
    assert before["queries_per_request"] > after["queries_per_request"]
    assert before["cache_lookups"] == 0
    assert after["cache_lookups"] > 0 and after["cache_hit_rate"] > 0
    assert [row["metric"] for row in summary["audit"]][:2] == ["Average latency", "P95 latency"]

    files = summary["files"]
    assert Path(files["report_html"]) == out / "report.html"
    assert "<html" in (out / "report.html").read_text().lower()
    assert (out / "alerts" / "generated" / "hlthz.rules.yml").is_file()
    assert (out / "dashboards" / "provisioning" / "hlthz-dashboards.yaml").is_file()
    assert not (out / "work").exists()
    assert str(out / "summary.json") in result.stdout.replace("\n", "")

    # The burst runs the before pool of 10 dry (callers wait or time out); after's 50 do not.
    assert before["burst"]["pool_max"] == 10 and after["burst"]["pool_max"] == 50
    assert before["burst"]["pool_waits"] + before["burst"]["pool_timeouts"] > 0
    assert after["burst"]["pool_waits"] == after["burst"]["pool_timeouts"] == 0
    # Response bytes, measured: lean documents, then gzip on top.
    assert before["burst"]["listing_bytes_plain"] > 10 * after["burst"]["listing_bytes_plain"]
    assert after["burst"]["listing_bytes_gzip"] < after["burst"]["listing_bytes_plain"]
    assert before["mean_response_bytes"] > after["mean_response_bytes"] > 0
    evidence = {row["optimization"]: row for row in summary["optimizations"]}
    for name in ("pool", "lean_responses", "compression"):
        assert evidence[name]["before"] is not None and evidence[name]["after"] is not None
        assert evidence[name]["after"] < evidence[name]["before"], evidence[name]
    assert "not measured" not in result.stdout

    # hlthz diagnose on both profiles: before names the story's causes, after has no critical.
    found = {(f["cause"], f["route"]) for f in summary["diagnosis"]["before"]["findings"]}
    for cause, route in (
        ("n_plus_one", "/api/products"),
        ("large_responses", "/api/products"),
        ("inline_side_work", "/api/orders"),
        ("pool_exhaustion", "*"),
    ):
        assert (cause, route) in found, (cause, route, found)
    listing = [
        f for f in summary["diagnosis"]["before"]["findings"] if f["route"] == "/api/products"
    ]
    assert listing[0]["cause"] == "n_plus_one"
    after_findings = summary["diagnosis"]["after"]["findings"]
    assert [f for f in after_findings if f["severity"] == "critical"] == []
    assert json.loads((out / "diagnosis-after.json").read_text())["findings"] == after_findings
    assert "hlthz diagnose on before" in result.stdout and "after: no " in result.stdout

    # One switch measured alone: background jobs take the e-mail off the order request.
    [alone] = summary["single_switch"]
    assert alone["optimization"] == "background_jobs"
    assert isinstance(alone["avg_ms"], float) and isinstance(alone["share_of_gain"], float)
    assert alone["queries_per_request"] == pytest.approx(before["queries_per_request"], rel=0.2)

    names = [p["name"] for p in summary["processes"]]
    assert names == [
        "seed",
        "api-recorded",
        "api-before",
        "replay-before",
        "api-after",
        "replay-after",
        "api-only-background_jobs",
        "replay-only-background_jobs",
    ]
    assert json.loads((out / "processes.json").read_text()) == summary["processes"]
    _assert_all_gone(summary["processes"])


@pytest.mark.integration
def test_an_interrupted_demo_stops_what_it_started(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [*HLTHZ, "demo", "--quick", "--out", str(out), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt while the recorded API serves the shoppers.
        deadline = time.monotonic() + 120
        log = out / "logs" / "api-recorded.log"
        while not (log.exists() and log.stat().st_size > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        assert log.exists(), "the demo never started the API"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "hlthz: interrupted"
    manifest = json.loads((out / "processes.json").read_text())
    assert "api-recorded" in [p["name"] for p in manifest]
    _assert_all_gone(manifest)
    assert not (out / "summary.json").exists()


def test_an_unknown_optimization_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*HLTHZ, "demo", "--quick", "--out", str(tmp_path / "demo"), "--optimization", "turbo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hlthz: error: --optimization 'turbo': unknown; use one of join_queries, indexes, pool, "
        "cache, background_jobs, parallel_upstream, lean_responses, compression"
    ]
    assert not (tmp_path / "demo").exists()
