"""The recording proxy (``hlthz replay record``) in front of a real upstream: streaming both
ways, keep-alive, timeouts, upstream failures, clean shutdown and the progress line."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hlthz.procs import free_port
from hlthz.replay import read_capture
from tests.capture.conftest import HLTHZ, record_proxy, request


def test_proxy_streams_keeps_alive_and_records(upstream: tuple[str, type], tmp_path: Path) -> None:
    base, handler = upstream
    out = tmp_path / "p.jsonl"
    big_upload = os.urandom(3 * 1024 * 1024)
    # --keep-unparsed-bodies: the binary upload would otherwise be dropped by redaction.
    with record_proxy(base, out, "--max-body", "1KiB", "--keep-unparsed-bodies") as (url, stderr):
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        # Three requests on one client connection (keep-alive through the proxy).
        for i in range(3):
            conn.request("GET", f"/item/{i}?q=a%20b", headers={"X-Forwarded-For": "10.0.0.1"})
            response = conn.getresponse()
            info = json.loads(response.read())
            assert response.status == 200 and info["path"] == f"/item/{i}?q=a%20b"
        seen = {k.lower(): v for k, v in info["headers"].items()}
        assert seen["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
        # A 4 MiB chunked response arrives intact.
        conn.request("GET", "/big")
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200
        assert (
            hashlib.sha256(data).digest() == hashlib.sha256(bytes(range(256)) * 256 * 64).digest()
        )
        # A 3 MiB upload streams to the upstream and back.
        conn.request(
            "POST", "/upload", body=big_upload, headers={"Content-Type": "application/x-bin"}
        )
        response = conn.getresponse()
        assert response.status == 201 and response.read() == big_upload
        # A chunked upload too.
        conn.request("POST", "/chunks", body=iter([b"abc", b"defg"]), encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b"abcdefg")
        conn.close()
        # The proxy keeps its upstream connections alive too: far fewer than 6 were opened.
        assert len(handler.connections) <= 2
    records = list(read_capture(out))
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/item/0?q=a%20b", 200),
        ("GET", "/item/1?q=a%20b", 200),
        ("GET", "/item/2?q=a%20b", 200),
        ("GET", "/big", 200),
        ("POST", "/upload", 201),
        ("POST", "/chunks", 201),
    ]
    assert records[4].body == big_upload[:1024] and records[4].extra["body_truncated"] is True
    assert records[5].body == b"abcdefg" and records[5].header("content-length") == "7"
    assert records[5].header("transfer-encoding") is None
    assert any(line.startswith("recording: ") for line in stderr), stderr
    assert f"hlthz: proxied 6 requests, 6 written to {out}, 0 dropped" in stderr[-1]


def test_proxy_response_framing(upstream: tuple[str, type], tmp_path: Path) -> None:
    """HEAD, 204, close-delimited bodies, upstreams that drop kept-alive connections, and
    ``Expect: 100-continue`` all pass through a kept-alive client connection."""
    base, _ = upstream
    with record_proxy(base, tmp_path / "p.jsonl", "--no-progress") as (url, _):
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        for method, path, status, body in [
            ("HEAD", "/x", 200, b""),
            ("GET", "/nocontent", 204, b""),
            ("GET", "/until-close", 200, b"streamed until close"),
            ("GET", "/drop", 200, b"dropped"),
            ("GET", "/drop", 200, b"dropped"),
        ]:
            conn.request(method, path)
            response = conn.getresponse()
            assert (response.status, response.read()) == (status, body), path
        assert response.getheader("content-length") == "7"
        conn.request("PUT", "/up", body=b"payload", headers={"Expect": "100-continue"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b"payload")
        conn.close()


def test_proxy_timeouts_and_upstream_down(upstream: tuple[str, type], tmp_path: Path) -> None:
    base, _ = upstream
    out = tmp_path / "p.jsonl"
    stop = signal.SIGTERM  # a service manager's stop: just as clean as Ctrl-C
    with record_proxy(base, out, "--timeout", "0.3", "--no-progress", stop=stop) as (url, _):
        status, body, _ = request(url, "GET", "/slow")
        assert status == 504 and b"timed out" in body
        assert request(url, "GET", "/fine")[0] == 200
    dead = f"http://127.0.0.1:{free_port()}"
    with record_proxy(dead, tmp_path / "d.jsonl", "--no-progress") as (url, _):
        status, body, _ = request(url, "GET", "/x")
        assert status == 502 and b"failed" in body
    assert [(r.path, r.status) for r in read_capture(out)] == [("/slow", 504), ("/fine", 200)]


def test_record_cli_errors(tmp_path: Path) -> None:
    bad_out = subprocess.run(
        [
            *HLTHZ,
            "replay",
            "record",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--upstream",
            "http://127.0.0.1:1",
            "--out",
            str(tmp_path / "no" / "such" / "c.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_out.returncode == 2
    assert "hlthz: error: --out" in bad_out.stderr and "Traceback" not in bad_out.stderr
    bad_upstream = subprocess.run(
        [*HLTHZ, "replay", "record", "--upstream", "ftp://x", "--out", str(tmp_path / "c.jsonl")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_upstream.returncode == 2
    assert "--upstream 'ftp://x'" in bad_upstream.stderr


@pytest.mark.parametrize("listen", ["nohost", "127.0.0.1:99999"])
def test_record_bad_listen(listen: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *HLTHZ,
            "replay",
            "record",
            "--listen",
            listen,
            "--upstream",
            "http://127.0.0.1:1",
            "--out",
            str(tmp_path / "c.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "--listen" in proc.stderr


def test_proxy_sampling_and_rules(upstream: tuple[str, type], tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    args = ("--no-progress", "--exclude", "/skip*", "--exclude", "POST /quiet", "--max-body", "4")
    with record_proxy(upstream[0], out, *args) as (url, _):
        for method, path in [
            ("GET", "/keep"),
            ("GET", "/skip/me"),
            ("POST", "/quiet"),
            ("POST", "/loud"),
        ]:
            assert request(url, method, path, body=b"12345678" if method == "POST" else None)[0]
    records = list(read_capture(out))
    assert [(r.method, r.path) for r in records] == [("GET", "/keep"), ("POST", "/loud")]
    assert records[1].body == b"1234" and records[1].extra == {"body_truncated": True}
    with record_proxy(upstream[0], tmp_path / "none.jsonl", "--no-progress", "--sample", "0%") as (
        url,
        _,
    ):
        assert request(url, "GET", "/keep")[0] == 200
    assert list(read_capture(tmp_path / "none.jsonl")) == []


def test_bad_upstream_or_out_leaves_the_listen_port_free(tmp_path: Path) -> None:
    import socket

    from hlthz.errors import UsageError
    from hlthz.replay import recording
    from hlthz.replay.capture.proxy import run_proxy

    port = free_port()
    with pytest.raises(UsageError, match="--upstream") as info:
        run_proxy(
            f"127.0.0.1:{port}",
            "ftp://x",
            lambda app: recording(app, tmp_path / "c.jsonl", kind="asgi"),
            progress=False,
        )
    # ``info`` keeps the failed call's frame (and so its socket object) alive: only an explicit
    # close frees the port. A plain bind (no SO_REUSEADDR) fails while anything holds it.
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", port))
    finally:
        probe.close()
    assert info.value is not None
