"""The webhook sink stores Alertmanager notifications and lists them, filtered."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hlthz.procs import free_port, http_ok, wait_until
from hlthz.tools.stack.webhook_sink import WebhookSink, iter_alerts, read_notifications


def _notification(status: str, alertname: str, severity: str) -> dict[str, Any]:
    # The shape of Alertmanager's webhook payload, version 4.
    return {
        "version": "4",
        "receiver": severity,
        "status": status,
        "groupLabels": {"alertname": alertname},
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "severity": severity, "job": "api"},
                "annotations": {"summary": "s"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_sink_stores_and_lists_notifications(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    with WebhookSink(out) as sink:
        assert (
            _post(
                f"{sink.url}/critical",
                json.dumps(_notification("firing", "A", "critical")).encode(),
            )
            == 200
        )
        assert (
            _post(
                f"{sink.url}/warning", json.dumps(_notification("firing", "B", "warning")).encode()
            )
            == 200
        )
        assert (
            _post(
                f"{sink.url}/critical",
                json.dumps(_notification("resolved", "A", "critical")).encode(),
            )
            == 200
        )

        everything = _get(f"{sink.url}/")
        assert [(a["alertname"], a["status"]) for a in everything] == [
            ("A", "firing"),
            ("B", "firing"),
            ("A", "resolved"),
        ]
        firing_a = _get(f"{sink.url}/?alertname=A&status=firing")
        assert len(firing_a) == 1 and firing_a[0]["receiver"] == "critical"
        assert _get(f"{sink.url}/?severity=warning")[0]["alertname"] == "B"
        assert len(_get(f"{sink.url}/notifications")) == 3
        assert sink.alerts(alertname="A", status="resolved")[0]["severity"] == "critical"

    stored = read_notifications(out)
    assert [n["path"] for n in stored] == ["/critical", "/warning", "/critical"]


def test_sink_rejects_non_json_and_unknown_paths(tmp_path: Path) -> None:
    with WebhookSink(tmp_path / "alerts.jsonl") as sink:
        assert _post(sink.url + "/x", b"not json") == 400
        assert _post(sink.url + "/x", b"[1, 2]") == 400
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(sink.url + "/nope")
        assert info.value.code == 404
        assert sink.notifications() == []


def test_a_garbled_content_length_gets_a_400(tmp_path: Path) -> None:
    with WebhookSink(tmp_path / "alerts.jsonl") as sink:
        port = int(sink.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: ten\r\n\r\n{}")
            reply = conn.recv(4096)
        assert reply.startswith(b"HTTP/1.0 400 "), reply
        assert sink.notifications() == []


def test_stopping_a_sink_never_started_returns(tmp_path: Path) -> None:
    sink = WebhookSink(tmp_path / "alerts.jsonl")
    stopper = threading.Thread(target=sink.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive()
    with pytest.raises(OSError):  # the listening socket is closed
        socket.create_connection(("127.0.0.1", int(sink.url.rsplit(":", 1)[1])), timeout=2)


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    good = {"received_at": 1.0, "path": "/p", "payload": _notification("firing", "A", "info")}
    out.write_text(json.dumps(good) + "\n" + '{"received_at": 2.0, "pa')
    notes = read_notifications(out)
    assert len(notes) == 1
    assert [a["alertname"] for a in iter_alerts(notes)] == ["A"]


def test_sink_runs_as_a_module_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hlthz.tools.stack.webhook_sink",
            "--port",
            str(port),
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/healthy"), timeout=15, what="sink")
        body = json.dumps(_notification("firing", "C", "critical")).encode()
        assert _post(f"http://127.0.0.1:{port}/critical", body) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [a["alertname"] for a in iter_alerts(read_notifications(out))] == ["C"]
