"""hlthz.metrics_page: the one reader of an app's metrics page, against a real HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from hlthz import metrics_page
from hlthz.errors import ScrapeError, UsageError
from hlthz.metrics_page import page_samples, read_metrics_page
from hlthz.procs import free_port


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page() -> Iterator[tuple[str, type[_Page]]]:
    handler = type("Page", (_Page,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics", handler
    server.shutdown()
    server.server_close()


def test_a_page_is_read_and_its_samples_parsed(page: tuple[str, type[_Page]]) -> None:
    url, handler = page
    registry = CollectorRegistry()
    Counter("orders", "Orders.", ["route"], registry=registry).labels("/orders").inc(3)
    handler.body = generate_latest(registry)
    text = read_metrics_page(url, what="--metrics")
    samples = {s.name: (s.labels, s.value) for s in page_samples(text, what=url)}
    assert samples["orders_total"] == ({"route": "/orders"}, 3.0)


def test_each_failure_is_one_line_naming_the_option_and_the_url(
    page: tuple[str, type[_Page]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = page
    handler.status = 404
    with pytest.raises(
        ScrapeError,
        match=r"^--metrics http://127\.0\.0\.1:\d+/metrics: answered "
        r"HTTP 404; give the app's metrics URL$",
    ):
        read_metrics_page(url, what="--metrics")

    closed = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(ScrapeError, match=r"--from-metrics .*: cannot read it \(.*\); is the app"):
        read_metrics_page(closed, what="--from-metrics", timeout=2)

    with pytest.raises(UsageError, match="--metrics"):
        read_metrics_page("http://127.0.0.1:99999/metrics", what="--metrics")

    # A wrong URL serving a large file: refused after MAX_BYTES, not read to the end.
    handler.status = 200
    handler.body = b"x" * 2048
    monkeypatch.setattr(metrics_page, "MAX_BYTES", 1024)
    with pytest.raises(ScrapeError, match="is this a metrics page"):
        read_metrics_page(url, what="--metrics")


def test_text_that_is_not_prometheus_names_its_source() -> None:
    with pytest.raises(ScrapeError, match=r"^the demo API does not answer Prometheus text"):
        list(page_samples("<html>\n<body>not metrics</body>\n", what="the demo API"))
