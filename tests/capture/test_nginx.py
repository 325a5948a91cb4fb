"""Access logs written by a real nginx (tests/capture/conftest.py: nginx_logs) in five formats,
each ending with the 400 lines nginx writes for garbage and a TLS handshake on a plain port."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from hlthz.errors import ReplayError
from hlthz.replay import CaptureFormatError, iter_records
from hlthz.replay.capture.format import ReadStats
from tests.capture.conftest import (
    CUSTOM_LOG_FORMAT,
    JSON_LOG_FORMAT,
    METHOD_LOG_FORMAT,
    SENT,
    NginxLogs,
)


def _read(path: Path, log_format: str | None = None) -> tuple[list, ReadStats]:  # type: ignore[type-arg]
    stats = ReadStats()
    records = list(iter_records(path, format="nginx", log_format=log_format, stats=stats))
    return records, stats


def test_combined_is_recognised_and_garbage_lines_are_skipped_in_one_summary(
    nginx_logs: NginxLogs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    records, stats = _read(nginx_logs.combined)
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert stats.detail == "nginx log format: combined"
    assert stats.not_requests == 2 and stats.invalid == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"{nginx_logs.combined}: 2 lines are not an HTTP request (garbage, TLS handshakes or "
        "empty connections nginx answered with 400) and were skipped"
    ]
    for r in records:
        assert int(nginx_logs.before) - 1 <= r.ts_ns / 1e9 <= nginx_logs.after + 1
        assert r.headers == []  # http.client sends no User-Agent/Referer: nginx logged "-"
    assert records[1].extra.get("body_unknown") is True  # combined logs carry no bodies
    assert "body_unknown" not in records[0].extra  # a GET has no body to miss


def test_combined_with_trailing_fields_is_recognised(nginx_logs: NginxLogs) -> None:
    records, stats = _read(nginx_logs.timed)
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert stats.detail == (
        "nginx log format: combined + $request_time $upstream_response_time $msec"
    )
    assert stats.not_requests == 2
    # Send time = $msec (when the response ended) - $request_time, to the millisecond.
    assert all(r.duration_ns is not None for r in records)
    assert all(
        nginx_logs.before - 0.01 <= r.ts_ns / 1e9 <= nginx_logs.after + 0.01 for r in records
    )


def test_custom_format_decodes_nginx_escapes(nginx_logs: NginxLogs) -> None:
    records, stats = _read(nginx_logs.custom, CUSTOM_LOG_FORMAT)
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert stats.detail == "nginx log format: custom" and stats.not_requests == 2
    assert json.loads(records[1].body) == {"user": "ada", "password": "hunter2-p4ss"}
    assert records[4].body == bytes(range(256))  # nginx escaped it as \xHH
    assert records[2].header("authorization") == "Bearer tok-Bearer-7f3a9c"
    events = records[6]  # the gzip POST: its bytes and its Content-Encoding header
    assert events.header("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(events.body))["event"] == "checkout"


def test_escape_json_lines_are_recognised_and_decoded(nginx_logs: NginxLogs) -> None:
    raw = nginx_logs.json.read_bytes()
    assert b'\\"password\\"' in raw  # nginx escaped the body's quotes as JSON
    records, stats = _read(nginx_logs.json)
    assert stats.detail == "nginx log format: json" and stats.not_requests == 2
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert json.loads(records[1].body) == {"user": "ada", "password": "hunter2-p4ss"}
    assert records[4].body == bytes(range(256))
    assert records[2].header("authorization") == "Bearer tok-Bearer-7f3a9c"
    assert json.loads(gzip.decompress(records[6].body))["event"] == "checkout"
    # The exact log_format, pasted from nginx.conf with its escape=json, reads the same.
    given, stats = _read(nginx_logs.json, f"escape=json '{JSON_LOG_FORMAT}'")
    assert stats.detail == "nginx log format: json (given)"
    assert [(r.method, r.path, r.body) for r in given] == [
        (r.method, r.path, r.body) for r in records
    ]


def test_a_dash_is_never_a_method(nginx_logs: NginxLogs) -> None:
    assert b'] - "-" 400' in nginx_logs.method.read_bytes()  # what nginx logged for garbage
    records, stats = _read(nginx_logs.method, METHOD_LOG_FORMAT)
    assert [(r.method, r.path, r.status) for r in records] == SENT
    assert stats.not_requests == 2


def test_mismatch_names_column_and_field_never_the_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    line = (
        '10.0.0.1 - - [02/Dec/2026:09:58:23 +0000] "GET /a?token=tok-SECRET-1 HTTP/1.1" 200 2 '
        '"-" "curl/8"\n'
    )
    broken = line.replace(' 200 2 "-"', " 200 2 -")  # the referer lost its quotes
    log.write_text(line + broken)
    column = broken.index(" 200 2 -") + len(" 200 2") + 1
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(log))
    assert str(raised.value) == (
        f"{log}:2: does not match the log format (combined) at column {column} (after "
        "$body_bytes_sent): expected ' \"'; pass the server's log_format with --log-format"
    )
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(log, log_format=CUSTOM_LOG_FORMAT))
    assert "tok-SECRET" not in str(raised.value) and "column 9 (after $remote_addr)" in str(
        raised.value
    )


def test_an_unknown_format_says_where_it_left_combined(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-12-02 INFO user=ada token=tok-SECRET-2 logged in\n")
    with pytest.raises(CaptureFormatError) as raised:
        list(iter_records(log))
    message = str(raised.value)
    assert message.startswith(f"{log}:1: not an access log in a format hlthz recognises")
    assert "column 11 (after $remote_addr): expected ' - '" in message
    assert "tok-SECRET" not in message


def test_bad_log_format_options(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    with pytest.raises(ReplayError, match="must log \\$request"):
        list(iter_records(log, log_format="$remote_addr $status"))
    with pytest.raises(ReplayError, match="no \\$variables"):
        list(iter_records(log, log_format="whatever"))


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
