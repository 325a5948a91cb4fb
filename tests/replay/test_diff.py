"""Diffy-style diff: a planted difference is found, a random field is filtered as noise."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hlthz.procs import ManagedProcess
from hlthz.replay import CaptureRecord, run_diff
from tests.replay.conftest import hlthz, start_target, write_capture


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """Primary and secondary (the release) and a candidate whose ``price`` is one higher."""
    logs = tmp_path_factory.mktemp("diff")
    procs: list[ManagedProcess] = []
    try:
        for variant in (0, 0, 1):
            procs.append(start_target(logs, variant=variant))
        yield procs[0].url, procs[1].url, procs[2].url
    finally:
        for proc in procs:
            proc.stop()


def test_diff_finds_the_planted_difference_and_filters_noise(
    tmp_path: Path, three: tuple[str, str, str]
) -> None:
    primary, secondary, candidate = three
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.01, "GET", f"/json/{i % 4}") for i in range(12)]
    )
    out = tmp_path / "diff.json"
    done = hlthz(
        "replay",
        "diff",
        str(capture),
        "--primary",
        primary,
        "--secondary",
        secondary,
        "--candidate",
        candidate,
        "--out",
        str(out),
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(out.read_text())
    assert {d["path"] for d in data["differences"]} == {"$.price"}
    assert sum(d["count"] for d in data["differences"]) == 12
    assert data["noise_filtered"] == 12  # request_id differs everywhere, primary vs secondary too
    example = data["differences"][0]["examples"][0]
    assert example["candidate"] == example["primary"] + 1


def test_ignore_rules_and_identical_targets_pass(
    tmp_path: Path, three: tuple[str, str, str]
) -> None:
    primary, secondary, candidate = three
    capture = write_capture(
        tmp_path / "c.jsonl", [(0.0, "GET", "/json/3"), (0.1, "POST", "/json/1")]
    )
    same = hlthz(
        "replay",
        "diff",
        str(capture),
        "--primary",
        primary,
        "--candidate",
        secondary,
        "--ignore",
        "$.request_id",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "1 skipped" in same.stdout
    ignored = hlthz(
        "replay",
        "diff",
        str(capture),
        "--primary",
        primary,
        "--candidate",
        candidate,
        "--ignore",
        "request_id",
        "--ignore",
        "$.pri*",
    )
    assert ignored.returncode == 0, ignored.stdout
    noisy = hlthz("replay", "diff", str(capture), "--primary", primary, "--candidate", secondary)
    assert noisy.returncode == 1 and "$.request_id" in noisy.stdout


def test_a_candidate_that_drops_every_connection_is_a_difference(
    three: tuple[str, str, str],
) -> None:
    primary = three[0]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept_and_close() -> None:
        for _ in range(200):  # bounded: 20 s at most, stopped as soon as the diff is done
            if stop.is_set():
                return
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    records = [
        CaptureRecord(id=str(i), ts_ns=i, method="GET", path=f"/json/{i}", headers=[])
        for i in range(2)
    ]
    try:
        result = run_diff(records, primary=primary, candidate=f"http://127.0.0.1:{port}")
    finally:
        stop.set()
        thread.join(5.0)
        server.close()
    assert result.failed  # used to pass: failed requests were skipped, not compared
    assert result.requests == 2 and result.errors == 2
    (group,) = result.differences.values()
    assert group.kind == "status" and group.count == 2
    assert group.examples[0]["primary"] == 200
    assert str(group.examples[0]["candidate"]).startswith("transport error")


def test_unwritable_out_fails_before_any_request(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/json/1")])
    blocker = tmp_path / "file"
    blocker.write_text("")
    dead = "http://127.0.0.1:1"
    out = str(blocker / "d.json")
    done = hlthz(
        "replay", "diff", str(capture), "--primary", dead, "--candidate", dead, "--out", out
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hlthz: error: --out ") and "Traceback" not in done.stderr
