"""``hlthz replay import | export | inspect`` through the real CLI entry point."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.replay import read_capture
from hlthz.tools.cli import main
from tests.capture.conftest import FIXTURES, SENT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hlthz", *args], capture_output=True, text=True, timeout=60
    )


def test_import_inspect_export(tmp_path: Path) -> None:
    out = tmp_path / "har.jsonl.gz"
    runner = CliRunner()
    result = runner.invoke(
        main, ["replay", "import", str(FIXTURES / "mitmproxy.har"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "imported 7 requests" in result.output and "(har)" in result.output
    # The PUT's application/octet-stream body cannot be redacted: dropped, and said so.
    assert "1 body dropped" in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["har.jsonl.gz"]  # no temporary left

    result = runner.invoke(main, ["replay", "inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["records"] == 7 and summary["bodies_dropped"] == 1
    assert summary["methods"] == {"POST": 4, "GET": 2, "PUT": 1}
    assert summary["status"] == {"2xx": 6, "4xx": 1}
    routes = {r["route"]: r["requests"] for r in summary["top_routes"]}
    assert routes["PUT /api/blobs/{id}"] == 1  # the path normalizer templated the id
    assert summary["redactions"]["header:authorization"] == 1
    assert summary["redactions"]["body:password"] == 2
    assert summary["redactions"]["query:token"] == 1
    assert summary["span_s"] > 0 and summary["peak_rps"] >= 1

    routes_file = tmp_path / "routes.txt"
    routes_file.write_text("/api/blobs/{blob_id}\n/api/{section}\n")
    result = runner.invoke(main, ["replay", "inspect", str(out), "--routes", str(routes_file)])
    assert result.exit_code == 0, result.output
    assert "PUT /api/blobs/{blob_id}" in result.output
    assert "POST /api/{section}" in result.output
    # No template matches: the path normalizer names it, as `replay run` would.
    assert "GET /missing/page" in result.output

    gor = tmp_path / "out.gor"
    result = runner.invoke(main, ["replay", "export", str(out), "--format", "gor", "-o", str(gor)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["replay", "inspect", str(gor), "--json"])
    assert json.loads(result.output)["records"] == len(SENT)


def test_torn_tail_warns_once_and_malformed_exits_2(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    assert (
        _run("replay", "import", str(FIXTURES / "sample-3field.gor"), "-o", str(capture)).returncode
        == 0
    )
    data = capture.read_bytes()
    capture.write_bytes(data[:-20])  # killed mid-line
    proc = _run("replay", "inspect", str(capture), "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["records"] == 2
    assert proc.stderr.count("truncated record skipped") == 1
    assert f"{capture}:4: truncated record skipped" in proc.stderr

    lines = data.split(b"\n")
    lines[2] = b"{oops"
    capture.write_bytes(b"\n".join(lines))
    proc = _run("replay", "inspect", str(capture))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"hlthz: error: {capture}:3: not valid JSON; fix or remove the line, or pass --skip-invalid"
    )
    proc = _run("replay", "import", str(capture), "--skip-invalid", "-o", str(tmp_path / "x.jsonl"))
    assert (
        proc.returncode == 0 and "2 requests" in proc.stdout and "1 invalid skipped" in proc.stdout
    )
    assert len(list(read_capture(tmp_path / "x.jsonl"))) == 2


def test_input_errors_are_one_line(tmp_path: Path) -> None:
    proc = _run("replay", "inspect", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    log = tmp_path / "access.log"
    log.write_text("this is not an access log\n")
    proc = _run("replay", "import", str(log), "-o", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2
    assert f"{log}:1: not an access log in a format hlthz recognises" in proc.stderr
    proc = _run("replay", "import", str(log), "--format", "har", "-o", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "is this a HAR file?" in proc.stderr
    proc = _run("replay", "import", str(log), "--log-format", "$request", "-o", str(log))
    assert proc.returncode == 2 and "overwrite the input" in proc.stderr


def test_import_that_finds_no_request_fails_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "not-gor.log"
    src.write_text("this is not a GoReplay file\n")
    out = tmp_path / "out.jsonl"
    proc = _run("replay", "import", str(src), "--format", "gor", "-o", str(out))
    assert proc.returncode == 2
    assert f"{src}: no gor requests to import" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_export_never_destroys_its_input_nor_leaves_a_partial_file(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    good = '{"id":"a1","ts_ns":1,"method":"GET","path":"/","headers":[],"body_b64":""}\n'
    capture.write_text('{"hlthz_capture":1,"created":"x","source":"t"}\n' + good + "{oops\n" + good)
    before = capture.read_bytes()
    runner = CliRunner()
    same = runner.invoke(main, ["replay", "export", str(capture), "-o", str(capture)])
    assert same.exit_code == 2 and "overwrite the input" in same.output
    assert capture.read_bytes() == before  # used to be truncated to nothing
    gor = tmp_path / "out.gor"
    broken = runner.invoke(main, ["replay", "export", str(capture), "-o", str(gor)])
    assert broken.exit_code == 2 and f"{capture}:3:" in broken.output
    assert not gor.exists()
    missing = runner.invoke(
        main, ["replay", "export", str(tmp_path / "nope.jsonl"), "-o", str(gor)]
    )
    assert missing.exit_code == 2 and not gor.exists()


def test_unreadable_input_is_one_line(tmp_path: Path) -> None:
    # /proc/self/mem is a regular file whose first byte cannot be read (EIO): an unreadable
    # input even for root, who can read any file with missing permissions.
    unreadable = Path("/proc/self/mem")
    if not unreadable.is_file():
        pytest.skip("needs Linux /proc")
    for args in (
        ("replay", "inspect", str(unreadable)),
        ("replay", "import", str(unreadable), "-o", str(tmp_path / "o.jsonl")),
        ("replay", "export", str(unreadable), "-o", str(tmp_path / "o.gor")),
    ):
        proc = _run(*args)
        assert proc.returncode == 2, proc.stderr
        assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr
