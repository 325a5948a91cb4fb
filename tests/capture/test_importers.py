"""Importers on files made by the real tools: mitmproxy's HAR (a gzip POST among its requests),
format detection. GoReplay is in test_gor.py, nginx in test_nginx.py."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from hlthz.replay import CaptureFormatError, iter_records, read_capture
from hlthz.replay.capture.convert import import_traffic
from hlthz.replay.capture.redact import Redactor
from tests.capture.conftest import FIXTURES, SENT, NginxLogs


def test_har_from_mitmproxy() -> None:
    records = list(iter_records(FIXTURES / "mitmproxy.har"))
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert all(r.duration_ns and r.duration_ns > 0 for r in records)
    assert records == sorted(records, key=lambda r: r.ts_ns)
    assert records[4].body == bytes(range(256))  # binary body via mitmproxy's Latin-1 text
    assert json.loads(records[1].body) == {"user": "ada", "password": "hunter2-p4ss"}
    assert records[3].body == b"name=Ada&password=hunter2-p4ss"
    assert records[1].header("content-length") == str(len(records[1].body))


def test_har_gzip_body_is_stored_as_its_headers_say() -> None:
    """mitmproxy writes postData.text decoded but keeps Content-Encoding: gzip. The record
    holds the body gzip-encoded again, with a Content-Length of what it holds."""
    raw = json.loads((FIXTURES / "mitmproxy.har").read_text())["log"]["entries"][6]["request"]
    assert ("Content-Encoding", "gzip") in [(h["name"], h["value"]) for h in raw["headers"]]
    assert raw["postData"]["text"].startswith('{"event"')  # decoded by mitmproxy
    record = list(iter_records(FIXTURES / "mitmproxy.har"))[6]
    assert record.header("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(record.body))["event"] == "checkout"
    assert record.header("content-length") == str(len(record.body))
    redacted, stats = Redactor(key=b"k").redact(record)
    # Redacted and re-encoded: still gzip, still consistent, the token replaced.
    doc = json.loads(gzip.decompress(redacted.body))
    assert doc == {
        "event": "checkout",
        "session_token": Redactor(key=b"k").placeholder("gz-t0ken-4e9d1c"),
    }
    assert redacted.header("content-length") == str(len(redacted.body))
    assert stats.dropped == {} and "body_dropped" not in redacted.extra


def test_har_body_in_an_encoding_python_cannot_write_loses_the_header(tmp_path: Path) -> None:
    entry = {
        "startedDateTime": "2026-01-02T03:04:05Z",
        "request": {
            "method": "POST",
            "url": "https://shop.test/e",
            "headers": [
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Content-Encoding", "value": "br"},
                {"name": "Content-Length", "value": "9"},
            ],
            "postData": {"mimeType": "application/json", "text": '{"a":1}'},
        },
    }
    har = tmp_path / "br.har"
    har.write_text(json.dumps({"log": {"entries": [entry]}}))
    (record,) = list(iter_records(har))
    assert record.body == b'{"a":1}' and record.header("content-encoding") is None
    assert record.header("content-length") == "7"


def test_har_errors_name_the_field_never_a_value(tmp_path: Path) -> None:
    entry = {
        "startedDateTime": "not a time tok-Bearer-secret",
        "request": {"method": "GET", "url": "https://shop.test/?token=tok-in-url", "headers": []},
    }
    har = tmp_path / "bad.har"
    har.write_text(json.dumps({"log": {"entries": [entry]}}))
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(har))
    assert str(raised.value) == (
        f"{har}:1: log.entries[0]: startedDateTime is not an ISO-8601 time"
    )


def test_auto_detection(tmp_path: Path, nginx_logs: NginxLogs) -> None:
    from hlthz.replay import detect_format

    assert detect_format(FIXTURES / "mitmproxy.har") == "har"
    assert detect_format(FIXTURES / "sample-3field.gor") == "gor"
    assert detect_format(FIXTURES / "sample-4field.gor.gz") == "gor"
    assert detect_format(nginx_logs.combined) == "nginx"
    assert detect_format(nginx_logs.json) == "nginx"  # JSON lines, not a HAR
    capture = tmp_path / "c.jsonl.gz"
    import_traffic(FIXTURES / "mitmproxy.har", capture)
    assert detect_format(capture) == "hlthz"
    assert len(list(read_capture(capture))) == len(SENT)
    gz_log = tmp_path / "access.log.gz"
    gz_log.write_bytes(gzip.compress(nginx_logs.combined.read_bytes()))
    assert len(list(iter_records(gz_log))) == len(SENT)
    shutil.copy(FIXTURES / "mitmproxy.har", tmp_path / "x.txt")
    assert detect_format(tmp_path / "x.txt") == "har"


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
