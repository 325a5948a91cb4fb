"""``replay import | inspect | export`` over several files: per-worker ``{pid}`` captures from a
real gunicorn merged by time with unique ids, glob patterns, route/method filters, sampling by
session, and warnings for timestamps out of order."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.errors import ReplayError
from hlthz.procs import ManagedProcess, free_port, port_open
from hlthz.replay import CaptureRecord, CaptureWriter, iter_records, read_capture
from hlthz.replay.capture.convert import export_traffic, import_traffic
from hlthz.replay.capture.format import ReadStats
from hlthz.replay.capture.inputs import merged_records
from hlthz.replay.capture.select import Selection
from hlthz.tools.cli import main
from tests.capture.conftest import FIXTURES, request

SESSIONS = [f"s{i}" for i in range(12)]
REQUESTS = 96

APP = textwrap.dedent(
    """
    import os
    import time

    import flask
    from hlthz.replay import recording

    app = flask.Flask("workers")

    @app.route("/<path:rest>", methods=["GET", "POST"])
    def anything(rest):
        flask.request.get_data()
        time.sleep(0.02)  # busy long enough for the next connection to go to another worker
        return {"pid": os.getpid()}

    app.wsgi_app = recording(
        app.wsgi_app, os.environ["CAPTURE"], sample_key="header:X-Session", flush_interval=0.01
    )
    """
)


@pytest.fixture(scope="module")
def worker_captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Per-worker captures (``shop-{pid}.jsonl``) of a real gunicorn with 3 workers: the
    requests of 12 sessions (header X-Session), each worker recording what it served."""
    folder = tmp_path_factory.mktemp("workers")
    (folder / "workers_app.py").write_text(APP)
    port = free_port()
    server = ManagedProcess(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "3",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(folder),
            "workers_app:app",
        ],
        log_path=folder / "gunicorn.log",
        ready=lambda: port_open(port),
        # One redaction key for all workers: same placeholders and session ids in every file.
        env={
            **os.environ,
            "CAPTURE": str(folder / "shop-{pid}.jsonl"),
            "HLTHZ_REDACT_KEY": "test-deployment-key",
        },
    )

    def send(i: int) -> int:
        session = SESSIONS[i % len(SESSIONS)]
        path = f"/api/products/{i}" if i % 3 else f"/api/orders/{i}"
        method = "POST" if i % 3 == 0 else "GET"
        body = b'{"qty": 1}' if method == "POST" else None
        return request(base, method, path, body=body, headers={"X-Session": session})[0]

    base = f"http://127.0.0.1:{port}"
    with server:
        # Three clients at once, so each sync worker gets connections while the others work.
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            assert set(pool.map(send, range(REQUESTS))) == {200}
        server.stop(timeout=20)  # SIGTERM: workers exit and close their captures
    yield folder


def _worker_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("shop-*.jsonl"))


def test_worker_captures_merge_in_time_order_with_unique_ids(
    worker_captures: Path, tmp_path: Path
) -> None:
    files = _worker_files(worker_captures)
    assert len(files) == 3  # one per worker (a worker may have served nothing)
    per_file = [list(read_capture(f)) for f in files]
    assert sum(len(r) for r in per_file) == REQUESTS
    out = tmp_path / "merged.jsonl"
    result = import_traffic(str(worker_captures / "shop-*.jsonl"), out)
    assert result.records == REQUESTS and len(result.inputs) == len(files)
    merged = list(read_capture(out))
    assert [r.ts_ns for r in merged] == sorted(r.ts_ns for r in merged)
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in merged) == list(range(REQUESTS))
    ids = [r.id for r in merged]
    assert len(set(ids)) == len(ids)
    # Each id is prefixed with the number of the file it came from.
    served = {str(n) for n, records in enumerate(per_file, 1) if records}
    assert {i.split("-", 1)[0] for i in ids} == served and len(served) >= 2
    # inspect and export read the same merged stream.
    summary = CliRunner().invoke(
        main, ["replay", "inspect", *map(str, files), "--json"], catch_exceptions=False
    )
    assert json.loads(summary.output)["records"] == REQUESTS
    gor = tmp_path / "merged.gor"
    export_traffic([str(worker_captures / "shop-*.jsonl")], gor)
    exported = list(iter_records(gor))
    assert len({r.id for r in exported}) == REQUESTS  # GoReplay pairs by id: all distinct


@pytest.mark.parametrize("sample_key", [None, "header:X-Session"])
def test_sampling_keeps_whole_sessions_the_same_every_run(
    worker_captures: Path, tmp_path: Path, sample_key: str | None
) -> None:
    """By the records' session (set by the recorder's sample_key) or by a header's value (here
    a placeholder: the same in every worker's file thanks to the shared redaction key)."""
    pattern = str(worker_captures / "shop-*.jsonl")
    kept: list[set[str | None]] = []
    for run in range(2):
        out = tmp_path / f"sample-{run}.jsonl"
        selection = Selection(sample=0.5, sample_key=sample_key)
        result = import_traffic(pattern, out, selection=selection)
        records = list(read_capture(out))
        by_session = collections.Counter(r.session for r in records)
        assert result.selection.sampled_out == REQUESTS - len(records)
        # A kept session is kept whole: all of its 8 requests, from whichever worker.
        assert set(by_session.values()) == {REQUESTS // len(SESSIONS)}
        assert None not in by_session and 0 < len(by_session) < len(SESSIONS)
        kept.append(set(by_session))
    assert kept[0] == kept[1]


def test_route_and_method_filters(tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    runner = CliRunner()
    args = ["replay", "import", str(FIXTURES / "mitmproxy.har"), "-o", str(out)]
    result = runner.invoke(main, [*args, "--route", "POST /api/*", "--exclude-route", "/api/login"])
    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in read_capture(out)] == [
        ("POST", "/api/orders"),
        ("POST", "/api/profile"),
        ("POST", "/api/events"),
    ]
    assert "4 filtered out" in result.output
    # Routes are named as inspect names them: the id segment is {id}.
    result = runner.invoke(main, [*args, "--route", "PUT /api/blobs/{id}"])
    assert [(r.method, r.path) for r in read_capture(out)] == [("PUT", "/api/blobs/42")]
    result = runner.invoke(main, [*args, "--method", "GET", "--method", "put"])
    assert sorted(r.method for r in read_capture(out)) == ["GET", "GET", "PUT"]
    result = runner.invoke(main, [*args, "--route", "DELETE /nothing"])
    assert result.exit_code == 2
    assert "all 7 were left out by --route/--method/--sample" in result.output
    result = runner.invoke(main, [*args, "--route", "api/x"])
    assert result.exit_code == 2 and "--route 'api/x': the route must start with '/'" in (
        result.output
    )


def _write(path: Path, stamps: list[int]) -> None:
    with CaptureWriter(path, source="test") as writer:
        for n, ts in enumerate(stamps):
            writer.write(CaptureRecord(f"r{n}", ts, "GET", f"/p/{n}", []))


def test_out_of_order_beyond_the_buffer_is_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "late.jsonl"
    stamps = [10_000_000_000 + n * 1_000_000 for n in range(3000)]
    stamps[50], stamps[51] = stamps[51], stamps[50]  # within the buffer: put back in order
    # When record 2500 comes out of a 1000-record buffer, record 1499 is the last one passed
    # on: 3 s after it, it is beyond the buffer.
    stamps[2500] = stamps[1499] - 3_000_000_000
    _write(path, stamps)
    stats = ReadStats()
    records = list(merged_records([path], stats=stats, window=1000))
    assert stats.out_of_order == 1
    assert [r.ts_ns for r in records[:60]] == sorted(stamps)[1:61]
    assert caplog.messages == [
        f"{path}: 1 record out of time order by up to 3.000 s (beyond a 1000-record reorder "
        "buffer); kept in file order, replayed right after the record before"
    ]


def test_globs_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no file matches this pattern"):
        import_traffic(str(tmp_path / "none-*.jsonl"), tmp_path / "o.jsonl")
    _write(tmp_path / "a.jsonl", [1, 3])
    with pytest.raises(ReplayError, match="would overwrite the input"):
        import_traffic(str(tmp_path / "*.jsonl"), tmp_path / "a.jsonl")
    proc = subprocess.run(
        [sys.executable, "-m", "hlthz", "replay", "inspect", str(tmp_path / "a.jsonl"), "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "hlthz: error: nope: no such file; give the path of a capture or traffic file"
    )
