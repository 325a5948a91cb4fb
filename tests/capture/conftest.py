"""Fixtures for the capture tests: real HTTP servers and tools on loopback.

- :func:`serve_wsgi` runs a WSGI app under werkzeug's threaded server;
- :func:`serve_asgi` runs an ASGI app under uvicorn;
- :func:`upstream` is a small ``http.server`` app the proxy forwards to (echo, big streamed
  responses, slow responses, framing corner cases, connection counting);
- :func:`record_proxy` runs ``hlthz replay record`` as a subprocess;
- :func:`nginx_logs` runs a real nginx in front of the fixture traffic and returns its logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hlthz.procs import ManagedProcess, free_port, port_open, wait_until
from tests.conftest import need_binary

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "capture"

# What fixtures/capture/fixture_traffic.py sends, in order: (method, path, status).
SENT = [
    ("GET", "/api/products?category=books&page=2", 200),
    ("POST", "/api/login", 201),
    ("POST", "/api/orders", 201),
    ("POST", "/api/profile", 201),
    ("PUT", "/api/blobs/42", 201),
    ("GET", "/missing/page?token=qtok-9d8e7f", 404),
    ("POST", "/api/events", 201),
]


def fixture_traffic() -> ModuleType:
    """The fixture traffic module (``send``, ``SECRETS``), loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        "fixture_traffic", FIXTURES / "fixture_traffic.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serve_wsgi(app: Callable[..., Any]) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 with werkzeug's threaded server; yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 with uvicorn (lifespan on) in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def request(
    base: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, dict[str, str]]:
    """One request on a fresh connection: (status, body, headers)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).connections.add(self.client_address[1])
        if self.path.startswith("/big"):
            # 4 MiB streamed in chunks with chunked transfer encoding.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = bytes(range(256)) * 256
            for _ in range(64):
                self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        if self.path.startswith("/nocontent"):
            self.send_response(204)
            self.end_headers()
            return
        if self.path.startswith("/until-close"):
            # No Content-Length, no chunking: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"streamed until close")
            self.close_connection = True
            return
        if self.path.startswith("/drop"):
            # Claims keep-alive, then closes anyway: the proxy must not reuse the connection.
            self._send(200, b"dropped")
            self.close_connection = True
            return
        info = {"path": self.path, "headers": dict(self.headers.items())}
        self._send(200, json.dumps(info).encode(), "application/json")

    def do_POST(self) -> None:
        type(self).connections.add(self.client_address[1])
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            body = bytes(data)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(201, body, self.headers.get("Content-Type", "application/octet-stream"))

    do_PUT = do_POST

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()


@pytest.fixture
def upstream() -> Iterator[tuple[str, type[_UpstreamHandler]]]:
    """(base URL, handler class) of a threaded upstream server on loopback."""

    class Handler(_UpstreamHandler):
        connections: set[int] = set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    wait_until(lambda: port_open(int(port)), timeout=5, what="upstream")
    try:
        yield f"http://127.0.0.1:{port}", Handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


CUSTOM_LOG_FORMAT = (
    '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time $msec '
    '"$http_user_agent" "$http_authorization" "$http_cookie" "$http_x_api_key" '
    '"$http_content_encoding" "$request_body"'
)
#: combined plus trailing fields: hlthz recognises it without --log-format.
TIMED_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time $upstream_response_time $msec'
)
#: JSON lines as nginx's escape=json writes them (quotes and backslashes escaped as JSON).
JSON_LOG_FORMAT = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request",'
    '"status":$status,"request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time","http_user_agent":"$http_user_agent",'
    '"http_authorization":"$http_authorization","http_cookie":"$http_cookie",'
    '"http_content_type":"$http_content_type","http_content_encoding":"$http_content_encoding",'
    '"request_body":"$request_body"}'
)
#: $request_method and $request_uri instead of $request: garbage lines log "-" as the method.
METHOD_LOG_FORMAT = (
    '$remote_addr [$time_local] $request_method "$request_uri" $status $request_time $msec'
)
#: What nginx logs for lines that are no request: a garbage line and a TLS handshake sent
#: to the plain HTTP port (both answered 400).
GARBAGE = [b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))]


@dataclass
class NginxLogs:
    """The access logs a real nginx wrote for the fixture traffic, then the garbage lines."""

    combined: Path
    custom: Path
    timed: Path
    json: Path
    method: Path
    before: float
    after: float


def send_raw(base: str, data: bytes) -> bytes:
    """Send raw bytes on a new connection; return what came back before the close."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@pytest.fixture(scope="session")
def nginx_logs(tmp_path_factory: pytest.TempPathFactory) -> NginxLogs:
    """A real nginx proxying to a loopback echo server, logging in five formats."""
    nginx = need_binary("nginx")
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "logs").mkdir()
    app_port, port = free_port(), free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format custom '{CUSTOM_LOG_FORMAT}';
    log_format timed '{TIMED_LOG_FORMAT}';
    log_format jsonl escape=json '{JSON_LOG_FORMAT}';
    log_format method '{METHOD_LOG_FORMAT}';
    access_log {prefix}/logs/combined.log combined;
    access_log {prefix}/logs/custom.log custom;
    access_log {prefix}/logs/timed.log timed;
    access_log {prefix}/logs/json.log jsonl;
    access_log {prefix}/logs/method.log method;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{app_port}; }}
    }}
}}
"""
    )
    server = ManagedProcess(
        "echo",
        [sys.executable, str(FIXTURES / "fixture_traffic.py"), "serve", str(app_port)],
        log_path=prefix / "echo.log",
        ready=lambda: port_open(app_port),
    )
    proxy = ManagedProcess(
        "nginx",
        [nginx, "-p", str(prefix), "-c", str(conf)],
        log_path=prefix / "nginx.log",
        ready=lambda: port_open(port),
    )
    base = f"http://127.0.0.1:{port}"
    with server, proxy:
        before = time.time()
        subprocess.run(
            [sys.executable, str(FIXTURES / "fixture_traffic.py"), "send", base],
            check=True,
            timeout=30,
        )
        after = time.time()
        for data in GARBAGE:
            assert send_raw(base, data).startswith(b"HTTP/1.1 400")
        request(base, "GET", "/flush")
    # nginx writes each line when the request ends; the last request proves earlier ones are in.
    logs = prefix / "logs"
    lines = len(SENT) + len(GARBAGE)
    for name in ("combined", "custom", "timed", "json", "method"):
        path = logs / f"{name}.log"
        text = path.read_bytes()
        assert text.count(b"\n") == lines + 1, name
        path.write_bytes(b"\n".join(text.split(b"\n")[:lines]) + b"\n")
    return NginxLogs(
        combined=logs / "combined.log",
        custom=logs / "custom.log",
        timed=logs / "timed.log",
        json=logs / "json.log",
        method=logs / "method.log",
        before=before,
        after=after,
    )


HLTHZ = [sys.executable, "-m", "hlthz"]


@contextlib.contextmanager
def record_proxy(
    upstream: str, out: Path, *args: str, stop: int = signal.SIGINT
) -> Iterator[tuple[str, list[str]]]:
    """Run ``hlthz replay record``; stop it with ``stop``; yield (URL, stderr lines after)."""
    port = free_port()
    stderr_lines: list[str] = []
    proc = subprocess.Popen(
        [
            *HLTHZ,
            "replay",
            "record",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            upstream,
            "--out",
            str(out),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, timeout=20, what="proxy")
        assert proc.poll() is None, proc.communicate()[1]
        yield f"http://127.0.0.1:{port}", stderr_lines
    finally:
        os.killpg(proc.pid, stop)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=5)
        stderr_lines.extend(err.replace("\r", "\n").splitlines())
        assert proc.returncode == 0, err
