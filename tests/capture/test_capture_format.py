"""Capture format v1: round trips, torn tails at any offset, malformed files, 0600, rotation."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlthz.replay import CaptureFormatError, CaptureRecord, CaptureWriter, read_capture
from hlthz.replay.capture.format import encode_record, read_header

_token = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1)
_records = st.lists(
    st.builds(
        CaptureRecord,
        id=st.text(min_size=1, max_size=20),
        ts_ns=st.integers(min_value=0, max_value=2**63 - 1),
        method=st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), _token),
        path=st.text(max_size=200),
        headers=st.lists(st.tuples(_token, st.text(max_size=50)), max_size=8),
        body=st.binary(max_size=500),
        session=st.one_of(st.none(), st.text(max_size=20)),
        status=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
        duration_ns=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    ),
    min_size=1,
    max_size=12,
)


def _write(path: Path, records: list[CaptureRecord]) -> None:
    with CaptureWriter(path, source="test") as writer:
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=_records)
def test_round_trip_arbitrary_records(
    tmp_path: Path, suffix: str, records: list[CaptureRecord]
) -> None:
    path = tmp_path / f"c{suffix}"
    _write(path, records)
    assert list(read_capture(path)) == records


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=_records, data=st.data())
def test_truncation_at_any_offset_loses_only_the_torn_record(
    tmp_path: Path, records: list[CaptureRecord], data: st.DataObject
) -> None:
    path = tmp_path / "c.jsonl"
    _write(path, records)
    raw = path.read_bytes()
    # A share of the file, not a byte count: the file's length varies with its header's
    # timestamp, and hypothesis needs the same draws to mean the same test case.
    offset = len(raw) * data.draw(st.integers(min_value=0, max_value=1000)) // 1000
    path.write_bytes(raw[:offset])

    header_len = raw.index(b"\n") + 1
    ends, pos = [], header_len
    for record in records:
        pos += len(encode_record(record))
        ends.append(pos)
    # A record survives when everything but (at most) its newline is on disk.
    expected = [r for r, end in zip(records, ends, strict=True) if end - 1 <= offset]
    # A header without its newline is torn (the capture reads as empty, with a warning).
    torn = offset not in (0, *[e - 1 for e in ends], *ends, header_len, len(raw))
    warnings: list[str] = []
    reader = read_capture(path, warn=warnings.append)
    assert list(reader) == expected
    assert len(warnings) == int(torn)
    if torn and offset > header_len:
        assert warnings[0] == f"{path}:{len(expected) + 2}: truncated record skipped"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=_records, data=st.data())
def test_gzip_truncation_keeps_a_prefix(
    tmp_path: Path, records: list[CaptureRecord], data: st.DataObject
) -> None:
    path = tmp_path / "c.jsonl.gz"
    with CaptureWriter(path, source="test") as writer:
        for record in records:
            writer.write(record)
            writer.flush()  # what the recorder does after each batch
    raw = path.read_bytes()
    # A share of the file, not a byte count: the file's length varies with its header's
    # timestamp, and hypothesis needs the same draws to mean the same test case.
    offset = len(raw) * data.draw(st.integers(min_value=0, max_value=1000)) // 1000
    path.write_bytes(raw[:offset])
    got = list(read_capture(path, warn=lambda _: None))
    assert got == records[: len(got)]
    if offset == len(raw):
        assert got == records


def test_killed_writer_keeps_every_flushed_record(tmp_path: Path) -> None:
    """A gzip capture whose writer never closed (no trailer) still yields what was flushed."""
    path = tmp_path / "c.jsonl.gz"
    writer = CaptureWriter(path, source="test")
    records = [CaptureRecord(str(i), i, "GET", f"/{i}", []) for i in range(50)]
    for record in records:
        writer.write(record)
    writer.flush()
    # No close(): the gzip trailer is missing, as after SIGKILL.
    assert list(read_capture(path)) == records
    with pytest.raises(EOFError):
        gzip.decompress(path.read_bytes())


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    _write(path, [CaptureRecord("a", 1, "GET", "/", [])] * 3)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"id": "x", "ts_ns": "soon", "method": "GET", "path": "/"}'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(CaptureFormatError) as info:
        list(read_capture(path))
    assert str(info.value).startswith(f"{path}:3: ")
    assert "ts_ns" in str(info.value)
    lines[3] = b"not json"
    path.write_bytes(b"\n".join(lines))
    reader = read_capture(path, skip_invalid=True)
    assert len(list(reader)) == 1
    assert (reader.invalid, reader.truncated) == (2, 0)


def test_not_a_capture_and_wrong_version(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a"}\n')
    with pytest.raises(CaptureFormatError, match=r"c\.jsonl:1: not an hlthz capture"):
        list(read_capture(path))
    path.write_text('{"hlthz_capture": 2}\n')
    with pytest.raises(CaptureFormatError, match="version 2 is not supported"):
        list(read_capture(path))


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        _write(path, [CaptureRecord("a", 1, "GET", "/", [])])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_header(path)["source"] == "test"


def test_rotation_by_size_and_max_files(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    records = [CaptureRecord(str(i), i, "POST", "/x", [], body=b"x" * 300) for i in range(20)]
    with CaptureWriter(path, source="test", max_bytes=2000, max_files=3) as writer:
        for record in records:
            writer.write(record)
    files = sorted(tmp_path.iterdir())
    last = int(writer.paths[-1].name.split(".")[1])
    assert last >= 3  # it rotated more often than it keeps files
    assert [p.name for p in writer.paths] == [f"c.{i}.jsonl.gz" for i in range(last - 2, last + 1)]
    assert set(files) == set(writer.paths)
    got = [r for p in writer.paths for r in read_capture(p)]
    assert got == records[-len(got) :]
    for p in writer.paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert read_header(p)["hlthz_capture"] == 1


def test_extra_keys_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    record = CaptureRecord("a", 1, "GET", "/", [], extra={"body_truncated": True, "x": [1]})
    _write(path, [record])
    line = json.loads(path.read_text().splitlines()[1])
    assert line["body_truncated"] is True and line["body_b64"] == ""
    assert list(read_capture(path)) == [record]


def test_a_file_has_one_writer(tmp_path: Path) -> None:
    """Two writers on one path (workers started with the same --record FILE) would interleave
    lines: the second is refused, and the first one's file is left intact."""
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, source="first") as first:
        first.write(CaptureRecord("a", 1, "GET", "/", []))
        first.flush()
        with pytest.raises(OSError, match=r"another process is writing it .*\{pid\}"):
            CaptureWriter(path, source="second")
    assert [r.id for r in read_capture(path)] == ["a"]
    assert read_header(path)["source"] == "first"
