"""``hlthz api seed|serve|worker`` as a user runs them: real processes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.procs import LOOPBACK, ManagedProcess, free_port, http_ok
from hlthz.tools.cli import main

HLTHZ = [sys.executable, "-m", "hlthz"]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read()


def test_seed_and_option_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    seeded = runner.invoke(main, ["api", "seed", "--small", "--data-dir", str(tmp_path)])
    assert seeded.exit_code == 0, seeded.output
    assert "400 products, 2000 reviews" in seeded.output
    reused = runner.invoke(main, ["api", "seed", "--small", "--reuse", "--data-dir", str(tmp_path)])
    assert reused.output.startswith("reused")
    bad = runner.invoke(main, ["api", "serve", "--opt", "cache=maybe", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "value must be on or off" in bad.output
    missing = runner.invoke(main, ["api", "serve", "--data-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "run `hlthz api seed` first" in missing.output
    assert "Traceback" not in missing.output
    no_redis = runner.invoke(main, ["api", "worker", "--data-dir", str(tmp_path)])
    assert no_redis.exit_code == 2 and "--cache" in no_redis.output
    helptext = runner.invoke(main, ["api", "serve", "--help"]).output
    for name in ("join_queries", "indexes", "pool", "cache", "background_jobs",
                 "parallel_upstream", "lean_responses", "compression"):  # fmt: skip
        assert name in helptext


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_subprocess(tmp_path: Path, workers: int) -> None:
    subprocess.run([*HLTHZ, "api", "seed", "--small", "--data-dir", str(tmp_path)], check=True)
    port = free_port()
    capture = tmp_path / "capture.jsonl"
    argv = [*HLTHZ, "api", "serve", "--profile", "before", "--opt", "cache=on",
            "--port", str(port), "--data-dir", str(tmp_path),
            "--workers", str(workers)]  # fmt: skip
    if workers == 1:
        argv += ["--record", str(capture)]
    base = f"http://{LOOPBACK}:{port}"
    # The metrics directory gunicorn's workers share is made (and must be removed) under TMPDIR.
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["TMPDIR"] = str(temp)
    with ManagedProcess(
        "demo-api",
        argv,
        log_path=tmp_path / "serve.log",
        env=env,
        ready=lambda: http_ok(base + "/health"),
    ):
        if workers > 1:
            assert [d.name[:19] for d in temp.iterdir()] == ["hlthz-demo-metrics-"]
        health = json.loads(get(base + "/health")[1])
        assert (
            health["optimizations"]["cache"] is True and health["optimizations"]["indexes"] is False
        )
        for _ in range(4):
            assert get(base + "/api/products?per_page=5")[0] == 200
        labels = '{method="GET",route="/api/products",status_code="200"}'
        counted = f"http_request_duration_seconds_count{labels} 4.0"
        # A request is observed as its response closes, which may come after the client has
        # read it: with 2 workers, /metrics can be answered before the 4th is recorded.
        deadline = time.monotonic() + 10
        metrics = get(base + "/metrics")[1].decode()
        while counted not in metrics and time.monotonic() < deadline:
            time.sleep(0.1)
            metrics = get(base + "/metrics")[1].decode()
        assert counted in metrics
        assert "cache_requests_total" in metrics
    assert list(temp.iterdir()) == []
    if workers == 1:
        lines = capture.read_text().splitlines()
        assert json.loads(lines[0])["hlthz_capture"] == 1
        assert any('"/api/products?per_page=5"' in line for line in lines[1:])


def test_bad_urls_and_ports_are_one_line_errors_without_the_password(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["api", "serve", "--db", "garbage"], "not a database URL"),
        (["api", "seed", "--db", "postgresql://u:s3cret@127.0.0.1:nan/x"], "not a database URL"),
        (["api", "seed", "--db", "mysql://u:s3cret@127.0.0.1/x"], "only sqlite:///FILE"),
        # Refused connection (port 1): the message names the URL, masked.
        (["api", "seed", "--db", "postgresql://u:s3cret@127.0.0.1:1/x"], "cannot seed"),
        (["api", "serve", "--port", "99999", "--data-dir", str(tmp_path)], "99999"),
        (["api", "serve", "--cache", "http://u:s3cret@127.0.0.1/0"], "not a Redis URL"),
        (["api", "worker", "--cache", "garbage"], "not a Redis URL"),
        # Nothing listens on port 1: the worker says so instead of a redis-py traceback.
        (
            ["api", "worker", "--cache", "redis://:s3cret@127.0.0.1:1/0", "--burst"],
            "does not answer",
        ),
    ]
    for argv, message in cases:
        result = runner.invoke(main, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert message in result.output, (argv, result.output)
        assert "s3cret" not in result.output and "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), (argv, result.exception)
