"""A tiny HTTP server that receives Alertmanager webhooks, so alerts are visible without a pager.

Alertmanager's webhook receiver POSTs one JSON *notification* per group
(``{"receiver", "status", "alerts": [...], "groupLabels", ...}``, payload version 4). The sink
appends each one, with the time it arrived and the path it was posted to, as one JSON line to a
file, and lists what it received on ``GET /`` (optionally filtered). The stack points every
receiver at ``http://127.0.0.1:PORT/<receiver name>`` so the listing shows the routing too.

Run it on its own::

    python -m hlthz.tools.stack.webhook_sink --port 9095 --out alerts.jsonl

or in-process (tests) with :class:`WebhookSink` as a context manager.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hlthz.procs import LOOPBACK

__all__ = ["WebhookSink", "iter_alerts", "main", "read_notifications"]

# A webhook payload is a few KB; anything far bigger is not Alertmanager talking.
_MAX_BODY = 8 * 1024 * 1024


def read_notifications(path: str | Path) -> list[dict[str, Any]]:
    """Every notification stored in ``path`` (a missing file is an empty list).

    A line torn by a crash mid-write is skipped: the sink appends whole lines only, so only
    the last one can be incomplete.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    notifications = []
    for line in lines:
        try:
            notifications.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return notifications


def iter_alerts(notifications: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Flatten notifications into their alerts, each with the notification's receiver and time.

    Each yielded dict is ``{"receiver", "received_at", "status", "alertname", "severity",
    "labels", "annotations", "startsAt", "endsAt"}``: ``status`` is the alert's own
    (``firing`` or ``resolved``), which can differ from the group status.
    """
    for note in notifications:
        payload = note.get("payload") or {}
        for alert in payload.get("alerts") or []:
            labels = alert.get("labels") or {}
            yield {
                "receiver": payload.get("receiver", ""),
                "received_at": note.get("received_at"),
                "status": alert.get("status", payload.get("status", "")),
                "alertname": labels.get("alertname", ""),
                "severity": labels.get("severity", ""),
                "labels": labels,
                "annotations": alert.get("annotations") or {},
                "startsAt": alert.get("startsAt"),
                "endsAt": alert.get("endsAt"),
            }


def _matches(alert: dict[str, Any], filters: dict[str, str]) -> bool:
    for key, want in filters.items():
        have = alert.get(key) if key in ("status", "receiver") else alert["labels"].get(key)
        if have != want:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    server: _SinkServer
    server_version = "hlthz-webhook-sink"

    def log_message(self, format: str, *args: Any) -> None:
        # One line a request on stderr (the stack's log file), in Prometheus' log style.
        sys.stderr.write(f"ts={time.strftime('%Y-%m-%dT%H:%M:%S')} {format % args}\n")

    def _send_json(self, status: int, body: object) -> None:
        data = json.dumps(body, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:  # a garbled header must get an answer, not a dropped connection
            length = 0
        if length <= 0 or length > _MAX_BODY:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "a JSON body is required"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            return
        if not isinstance(payload, dict):
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": "the body is not a JSON object"})
            return
        self.server.store(urlsplit(self.path).path, payload)
        self._send_json(HTTPStatus.OK, {"status": "stored"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/-/healthy", "/-/ready"):
            self._send_json(HTTPStatus.OK, {"status": "ok"})
            return
        if url.path not in ("/", "/alerts", "/notifications"):
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such path {url.path}"})
            return
        notifications = read_notifications(self.server.out)
        if url.path == "/notifications":
            self._send_json(HTTPStatus.OK, notifications)
            return
        # /?alertname=X&severity=critical&status=firing&receiver=critical
        filters = {k: v[-1] for k, v in parse_qs(url.query).items()}
        alerts = [a for a in iter_alerts(notifications) if _matches(a, filters)]
        self._send_json(HTTPStatus.OK, alerts)


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out: Path) -> None:
        super().__init__(address, _Handler)
        self.out = out
        self._lock = threading.Lock()

    def store(self, path: str, payload: dict[str, Any]) -> None:
        record = {"received_at": time.time(), "path": path, "payload": payload}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        # Appends from concurrent handler threads must not interleave.
        with self._lock, open(self.out, "a", encoding="utf-8") as fh:
            fh.write(line)


class WebhookSink:
    """The sink, served from a background thread: ``with WebhookSink(out) as sink: sink.url``."""

    def __init__(self, out: str | Path, *, host: str = LOOPBACK, port: int = 0) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.touch()
        self._server = _SinkServer((host, port), self.out)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> WebhookSink:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-sink", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (or SIGTERM in :func:`main`)."""
        self._server.serve_forever()

    def stop(self) -> None:
        # shutdown() waits for serve_forever to return: on a sink never started it would hang.
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def notifications(self) -> list[dict[str, Any]]:
        return read_notifications(self.out)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Received alerts matching label, ``status`` or ``receiver`` filters."""
        return [a for a in iter_alerts(self.notifications()) if _matches(a, filters)]

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hlthz.tools.stack.webhook_sink``."""
    parser = argparse.ArgumentParser(
        prog="python -m hlthz.tools.stack.webhook_sink",
        description="Receive Alertmanager webhooks and store them as JSON lines.",
    )
    parser.add_argument("--host", default=LOOPBACK, help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9095, help="port to listen on (9095)")
    parser.add_argument("--out", required=True, help="JSON-lines file the notifications go to")
    args = parser.parse_args(argv)
    sink = WebhookSink(args.out, host=args.host, port=args.port)

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so it must not run in that thread.
        threading.Thread(target=sink._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.stderr.write(f"webhook sink listening on {sink.url}, storing to {sink.out}\n")
    sys.stderr.flush()
    sink.serve_forever()
    sink._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
