"""GoReplay files built as GoReplay writes them (protocol.go, output_file.go, input_raw.go):
types 1/2/3, 3- and 4-field headers, round trips from paired timestamps, torn tails at every
offset, and export to GoReplay and back."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hlthz.replay import CaptureFormatError, iter_records
from hlthz.replay.capture.convert import export_traffic, import_traffic
from hlthz.replay.capture.format import ReadStats
from hlthz.replay.capture.formats.gor import GOR_SEPARATOR
from hlthz.replay.capture.redact import Redactor
from tests.capture.conftest import FIXTURES

PUT, GET, DELETE, UPLOAD = (
    "0a1f90c0a8000a7f0000a001",
    "0a1f91c0a8000a7f0000b002",
    "0a1f92c0a8000a7f0000c003",
    "0a1f93c0a8000a7f0000d004",
)


def test_three_field_headers_and_chunked_body() -> None:
    records = list(iter_records(FIXTURES / "sample-3field.gor"))
    assert [(r.id, r.method, r.path) for r in records] == [
        ("a1b2c3d4e5f60001", "GET", "/api/products?token=qtok-9d8e7f"),
        ("a1b2c3d4e5f60002", "POST", "/api/login"),
        ("a1b2c3d4e5f60003", "POST", "/api/echo"),
    ]
    assert [r.ts_ns - records[0].ts_ns for r in records] == [0, 250_000_000, 500_000_000]
    assert all(r.status is None and r.duration_ns is None for r in records)
    assert records[2].body == b"hello world"
    assert records[2].header("transfer-encoding") is None
    assert records[2].header("content-length") == "11"


def test_round_trip_is_the_response_timestamp_minus_the_request_timestamp() -> None:
    """The 4th header field of types 1 and 2 is the message's own duration (first to last
    packet): 42 us for the GET's response, which arrived 180 ms after the request."""
    records = list(iter_records(FIXTURES / "sample-4field.gor.gz"))
    assert [(r.id, r.method, r.status, r.duration_ns) for r in records] == [
        (PUT, "PUT", 201, 12_000_000),  # the replayed (type 3) 500 is ignored
        (GET, "GET", 200, 180_000_000),
        (UPLOAD, "POST", None, None),
        (DELETE, "DELETE", None, None),
    ]
    assert records[0].body == bytes(range(256))


def test_a_body_cut_by_goreplay_is_marked_not_whole() -> None:
    """A complete message (separator present) whose body is shorter than its Content-Length:
    GoReplay's copy buffer cut it. Imported, marked body_truncated, the length kept."""
    upload = list(iter_records(FIXTURES / "sample-4field.gor.gz"))[2]
    assert len(upload.body) == 100 and upload.header("content-length") == "262"
    assert upload.extra == {"body_truncated": True}


def test_torn_body_at_the_end_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The file stops inside the last request's body (100 of 262 bytes, no separator)."""
    stats = ReadStats()
    records = list(iter_records(FIXTURES / "torn-body.gor", stats=stats))
    assert [(r.method, r.path, r.status) for r in records] == [("GET", "/api/products", 200)]
    assert stats.truncated == 1
    assert caplog.text.count("truncated record skipped") == 1
    assert f"{FIXTURES / 'torn-body.gor'}:13: truncated record skipped" in caplog.text


def test_torn_tail_at_every_offset_never_imports_a_partial_request(tmp_path: Path) -> None:
    """Cut the 4-field file at every byte of its last two messages (the cut upload, then the
    DELETE): a message is imported only once whole, a torn one is skipped and counted."""
    data = gzip.decompress((FIXTURES / "sample-4field.gor.gz").read_bytes())
    upload = data.rindex(b"1 " + UPLOAD.encode())
    delete = data.rindex(b"1 " + DELETE.encode())  # where the upload's separator ends
    whole_delete = len(data) - len(GOR_SEPARATOR)  # GoReplay accepts a missing last separator
    torn = tmp_path / "torn.gor"
    for cut in range(upload, len(data) + 1):
        torn.write_bytes(data[:cut])
        stats = ReadStats()
        methods = [r.method for r in iter_records(torn, format="gor", stats=stats)]
        expected = ["PUT", "GET"] + ["POST"] * (cut >= delete) + ["DELETE"] * (cut >= whole_delete)
        assert methods == expected, cut
        clean = cut in (upload, delete) or cut >= whole_delete
        assert stats.truncated == (0 if clean else 1), cut


def test_torn_request_head_is_skipped_anywhere(tmp_path: Path) -> None:
    """A message cut inside its head with its separator present (GoReplay's buffer ended in
    the headers) is skipped with the warning; reading goes on."""
    data = (FIXTURES / "sample-3field.gor").read_bytes()
    first_end = data.index(GOR_SEPARATOR)
    cut_inside_headers = data[: first_end - 30] + data[first_end:]
    path = tmp_path / "cut-head.gor"
    path.write_bytes(cut_inside_headers)
    stats = ReadStats()
    records = list(iter_records(path, stats=stats))
    assert [r.path for r in records] == ["/api/login", "/api/echo"]
    assert stats.truncated == 1


def test_malformed_message_names_the_line_and_quotes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gor"
    good = (FIXTURES / "sample-3field.gor").read_bytes()
    secret_line = b"GET /x?token=tok-LEAKED-9 HTP/1.1\r\nAuthorization: Bearer b-LEAK\r\n\r\n"
    bad.write_bytes(good + b"1 zz 123\n" + secret_line + GOR_SEPARATOR)
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(bad, format="gor"))
    message = str(raised.value)
    assert message.startswith(f"{bad}:29: the first line is not an HTTP request line")
    assert "LEAK" not in message
    stats = ReadStats()
    assert len(list(iter_records(bad, format="gor", skip_invalid=True, stats=stats))) == 3
    assert stats.invalid == 1


@pytest.mark.parametrize(
    ("encoding", "said"),
    [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16 or binary"), ("utf-32", "UTF-32")],
)
def test_a_gor_file_saved_as_utf16_says_so_not_truncated(
    tmp_path: Path, encoding: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = (FIXTURES / "sample-3field.gor").read_bytes().decode("utf-8")
    path = tmp_path / "re-saved.gor"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(path, format="gor", skip_invalid=True))
    assert str(raised.value) == (
        f"{path}:1: the file is {said}; save it as UTF-8; is this a GoReplay file?"
    )
    assert "truncated" not in caplog.text
    packed = tmp_path / "re-saved.gor.gz"  # the check reads the decompressed bytes
    packed.write_bytes(gzip.compress(text.encode(encoding)))
    with pytest.raises(CaptureFormatError, match=f"the file is {said}; save it as UTF-8"):
        list(iter_records(packed, format="gor"))


def test_export_round_trip(tmp_path: Path) -> None:
    original = list(iter_records(FIXTURES / "sample-4field.gor.gz"))
    capture = tmp_path / "c.jsonl"
    import_traffic(FIXTURES / "sample-4field.gor.gz", capture, redactor=Redactor(enabled=False))
    for name in ("out.gor", "out.gor.gz"):
        export_traffic(capture, tmp_path / name)
        again = list(iter_records(tmp_path / name))

        assert [(r.method, r.path, r.body, r.status, r.duration_ns, r.ts_ns) for r in again] == [
            (r.method, r.path, r.body, r.status, r.duration_ns, r.ts_ns) for r in original
        ]
    raw = (tmp_path / "out.gor").read_bytes()
    # Exactly GoReplay's framing: header line, raw HTTP/1.1, the monkey separator.
    assert raw.startswith(f"1 {PUT} 1700000000000000000 0\nPUT /api/blobs/42 HTTP/1.1\r\n".encode())
    assert raw.count(GOR_SEPARATOR) == 6
    assert not list(tmp_path.glob(".*.tmp"))
