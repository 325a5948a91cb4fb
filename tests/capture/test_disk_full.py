"""A full disk, for real: a 64 KiB tmpfs mounted for the test (root is needed; unmounted after).

- Recording: the app keeps serving; a record counted as written is on the disk, every other
  request is counted as dropped (``write_error``).
- ``replay import`` and ``export``: one line, exit 2, and no partial or temporary file left.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from prometheus_client import CollectorRegistry

from hlthz.replay import CaptureRecord, CaptureWriter, read_capture, recording
from tests.capture.conftest import HLTHZ, request, serve_wsgi

SIZE = 64 * 1024


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tmpfs of 64 KiB."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _words(n: int) -> str:
    """Text that neither compresses nor looks like a secret: short random words."""
    raw = base64.b64encode(os.urandom(n)).decode()
    return " ".join(raw[i : i + 12] for i in range(0, len(raw), 12))


def _big_capture(path: Path, records: int = 600) -> None:
    with CaptureWriter(path, source="test") as writer:
        for n in range(records):
            body = _words(300).encode()
            writer.write(
                CaptureRecord(
                    f"r{n}",
                    1_700_000_000_000_000_000 + n,
                    "POST",
                    f"/api/notes/{n}",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                    body,
                )
            )


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_recording_counts_only_what_is_on_disk(
    full_disk: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    app = flask.Flask("notes")

    @app.post("/api/notes")
    def note() -> tuple[str, int]:
        flask.request.get_data()
        return "ok", 201

    registry = CollectorRegistry()
    out = full_disk / f"c{suffix}"
    wrapped = recording(app.wsgi_app, out, registry=registry, flush_interval=0.01)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    sent = 150  # about 3 times what fits
    with serve_wsgi(app) as base:
        for _ in range(sent):
            body = _words(900).encode()
            status = request(
                base, "POST", "/api/notes", body=body, headers={"Content-Type": "text/plain"}
            )[0]
            assert status == 201  # the app keeps serving
        for _ in range(100):  # werkzeug closes (and so records) a response after sending it
            wrapped.recorder.flush()
            if wrapped.recorder.written + _dropped(registry) >= sent:
                break
    wrapped.close()
    written, dropped = wrapped.recorder.written, _dropped(registry)
    assert registry.get_sample_value("replay_capture_write_errors_total") == 1
    assert written + dropped == sent and 0 < written < sent
    assert registry.get_sample_value("replay_capture_records_total") == written
    on_disk = len(list(read_capture(out, warn=lambda _: None)))
    if suffix == ".jsonl":
        assert on_disk == written  # exactly: every whole line reached the file, and no other
    else:
        assert on_disk >= written  # gzip: records count once their batch is flushed
    assert any("No space left on device" in m for m in caplog.messages)


def _dropped(registry: CollectorRegistry) -> int:
    value = registry.get_sample_value("replay_capture_dropped_total", {"reason": "write_error"})
    return int(value or 0)


@pytest.mark.parametrize("command", ["import", "export"])
def test_conversion_on_a_full_disk_is_one_line_and_leaves_nothing(
    full_disk: Path, tmp_path: Path, command: str
) -> None:
    source = tmp_path / "big.jsonl"
    _big_capture(source)
    assert source.stat().st_size > 3 * SIZE
    out = full_disk / ("out.jsonl" if command == "import" else "out.gor")
    proc = subprocess.run(
        [*HLTHZ, "replay", command, str(source), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"hlthz: error: -o {out}: cannot write (No space left on device)\n"
    assert list(full_disk.iterdir()) == []  # no partial output, no temporary file
