"""Importers on files made by the real tools: mitmproxy's HAR, a real nginx's access logs, and
hand-made GoReplay files; export to GoReplay and back."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from hlthz.replay import CaptureFormatError, iter_records, read_capture
from hlthz.replay.capture.convert import export_traffic, import_traffic
from hlthz.replay.capture.format import ReadStats
from hlthz.replay.capture.formats.gor import GOR_SEPARATOR
from hlthz.replay.capture.redact import Redactor
from tests.capture.conftest import CUSTOM_LOG_FORMAT, FIXTURES, SENT


def test_har_from_mitmproxy() -> None:
    records = list(iter_records(FIXTURES / "mitmproxy.har"))
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert all(r.duration_ns and r.duration_ns > 0 for r in records)
    assert records == sorted(records, key=lambda r: r.ts_ns)
    assert records[4].body == bytes(range(256))  # binary body via mitmproxy's Latin-1 text
    assert json.loads(records[1].body) == {"user": "ada", "password": "hunter2-p4ss"}
    assert records[3].body == b"name=Ada&password=hunter2-p4ss"
    assert records[1].header("content-length") == str(len(records[1].body))


def test_gor_three_field_headers_and_chunked_body() -> None:
    records = list(iter_records(FIXTURES / "sample-3field.gor"))
    assert [(r.id, r.method, r.path) for r in records] == [
        ("a1b2c3d4e5f60001", "GET", "/api/products?token=qtok-9d8e7f"),
        ("a1b2c3d4e5f60002", "POST", "/api/login"),
        ("a1b2c3d4e5f60003", "POST", "/api/echo"),
    ]
    assert [r.ts_ns - records[0].ts_ns for r in records] == [0, 250_000_000, 500_000_000]
    assert all(r.status is None for r in records)
    assert records[2].body == b"hello world"
    assert records[2].header("transfer-encoding") is None
    assert records[2].header("content-length") == "11"


def test_gor_four_field_gzip_pairs_original_responses() -> None:
    records = list(iter_records(FIXTURES / "sample-4field.gor.gz"))
    assert [(r.id, r.method, r.status, r.duration_ns) for r in records] == [
        ("b0000001", "PUT", 201, 12_000_000),  # type 3 (replayed 500) is ignored
        ("b0000002", "GET", 200, 3_000_000),
        ("b0000003", "DELETE", None, None),
    ]
    assert records[0].body == bytes(range(256))


def test_gor_export_round_trip(tmp_path: Path) -> None:
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
    assert raw.startswith(b"1 b0000001 1700000000000000000 0\nPUT /api/blobs/42 HTTP/1.1\r\n")
    assert raw.count(GOR_SEPARATOR) == 5


def test_gor_malformed_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gor"
    good = (FIXTURES / "sample-3field.gor").read_bytes()
    bad.write_bytes(good + b"1 zz 123\nNOT HTTP\r\n\r\n" + GOR_SEPARATOR)
    with pytest.raises(CaptureFormatError, match=r"bad\.gor:\d+: bad request line"):
        list(iter_records(bad, format="gor"))
    stats = ReadStats()
    assert len(list(iter_records(bad, format="gor", skip_invalid=True, stats=stats))) == 3
    assert stats.invalid == 1


def test_nginx_combined_log(nginx_logs: tuple[Path, Path, float, float]) -> None:
    combined, _, before, after = nginx_logs
    records = list(iter_records(combined, format="nginx"))
    assert [(r.method, r.path, r.status) for r in records] == SENT
    for r in records:
        assert int(before) - 1 <= r.ts_ns / 1e9 <= after + 1
        assert r.headers == []  # http.client sends no User-Agent/Referer: nginx logged "-"
    assert records[1].extra.get("body_unknown") is True  # combined logs carry no bodies


def test_nginx_custom_format_with_msec_and_request_time(
    nginx_logs: tuple[Path, Path, float, float],
) -> None:
    _, custom, before, after = nginx_logs
    records = list(iter_records(custom, format="nginx", log_format=CUSTOM_LOG_FORMAT))
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert all(r.duration_ns is not None for r in records)
    assert all(before - 0.01 <= r.ts_ns / 1e9 <= after + 0.01 for r in records)
    assert [r.ts_ns for r in records] == sorted(r.ts_ns for r in records)
    assert json.loads(records[1].body) == {"user": "ada", "password": "hunter2-p4ss"}
    assert records[4].body == bytes(range(256))  # nginx escaped it as \xHH
    assert records[2].header("authorization") == "Bearer tok-Bearer-7f3a9c"


def test_nginx_wrong_format_is_a_line_error(nginx_logs: tuple[Path, Path, float, float]) -> None:
    _, custom, _, _ = nginx_logs
    with pytest.raises(CaptureFormatError, match=r"custom\.log:1: line does not match"):
        list(iter_records(custom, format="nginx"))


def test_auto_detection(tmp_path: Path, nginx_logs: tuple[Path, Path, float, float]) -> None:
    from hlthz.replay import detect_format

    assert detect_format(FIXTURES / "mitmproxy.har") == "har"
    assert detect_format(FIXTURES / "sample-3field.gor") == "gor"
    assert detect_format(FIXTURES / "sample-4field.gor.gz") == "gor"
    assert detect_format(nginx_logs[0]) == "nginx"
    capture = tmp_path / "c.jsonl.gz"
    import_traffic(FIXTURES / "mitmproxy.har", capture)
    assert detect_format(capture) == "hlthz"
    assert len(list(read_capture(capture))) == len(SENT)
    gz_log = tmp_path / "access.log.gz"
    gz_log.write_bytes(gzip.compress(nginx_logs[0].read_bytes()))
    assert len(list(iter_records(gz_log))) == len(SENT)
    shutil.copy(FIXTURES / "mitmproxy.har", tmp_path / "x.txt")
    assert detect_format(tmp_path / "x.txt") == "har"


def test_gor_torn_tail_is_skipped_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = (FIXTURES / "sample-3field.gor").read_bytes()
    last = raw.rindex(GOR_SEPARATOR, 0, len(raw) - len(GOR_SEPARATOR)) + len(GOR_SEPARATOR)
    torn = tmp_path / "torn.gor"
    torn.write_bytes(raw[: last + 30])  # killed while writing the third payload's request line
    stats = ReadStats()
    records = list(iter_records(torn, format="gor", stats=stats))
    assert [r.id for r in records] == ["a1b2c3d4e5f60001", "a1b2c3d4e5f60002"]
    assert stats.truncated == 1
    assert caplog.text.count("truncated record skipped") == 1


def test_browser_style_har(tmp_path: Path) -> None:
    """What DevTools exports: HTTP/2 pseudo-headers, base64 bodies, params-only form posts."""
    entries = [
        {
            "startedDateTime": "2026-01-02T03:04:05.123Z",
            "time": 12.5,
            "request": {
                "method": "post",
                "url": "https://shop.test/api/upload?x=1",
                "headers": [
                    {"name": ":authority", "value": "shop.test"},
                    {"name": ":method", "value": "POST"},
                    {"name": "content-type", "value": "application/octet-stream"},
                ],
                "postData": {
                    "mimeType": "application/octet-stream",
                    "encoding": "base64",
                    "text": "AAEC/w==",
                },
            },
            "response": {"status": 0},
            "timings": {"wait": -1},
        },
        {
            "startedDateTime": "2026-01-02T03:04:05.000+00:00",
            "time": 3,
            "request": {
                "method": "POST",
                "url": "https://shop.test/login",
                "headers": [{"name": "Host", "value": "shop.test"}],
                "postData": {
                    "mimeType": "application/x-www-form-urlencoded",
                    "params": [{"name": "user", "value": "ada"}, {"name": "pw", "value": "a b"}],
                },
            },
            "response": {"status": 302},
            "timings": {"wait": 2.25},
        },
    ]
    har = tmp_path / "browser.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    first, second = list(iter_records(har))
    assert (first.path, first.status, first.duration_ns) == ("/login", 302, 2_250_000)
    assert first.body == b"user=ada&pw=a+b"
    assert second.method == "POST" and second.path == "/api/upload?x=1"
    assert second.body == b"\x00\x01\x02\xff" and second.status is None
    assert second.duration_ns == 12_500_000
    assert second.headers[0] == ("Host", "shop.test")
    assert all(not name.startswith(":") for name, _ in second.headers)
    assert second.ts_ns == 1767323045123000000


def test_apache_combined_log(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text(
        '203.0.113.9 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" '
        '200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"\n'
    )
    (record,) = list(iter_records(log))
    assert (record.method, record.path, record.status) == ("GET", "/apache_pb.gif?a=1", 200)
    assert record.ts_ns == 971211336 * 10**9
    assert record.header("referer") == "http://www.example.com/start.html"
    assert record.header("user-agent") == "Mozilla/4.08 [en] (Win98; I ;Nav)"
