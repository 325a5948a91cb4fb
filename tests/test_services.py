"""The service fixtures start real servers that answer."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from tests.conftest import prom_query


def test_redis_answers(redis_url: str) -> None:
    port = urlparse(redis_url).port
    assert port
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16).startswith(b"+PONG")


def test_postgres_answers(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        assert conn.execute("select 1 + 1").fetchone() == (2,)


def test_prometheus_scrapes_itself(prometheus) -> None:  # type: ignore[no-untyped-def]
    proc = prometheus(scrape_configs=[])
    port = urlparse(proc.url).port
    proc2 = prometheus(targets=[f"127.0.0.1:{port}"], job="self")
    deadline = time.monotonic() + 20
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline and not result:
        result = prom_query(proc2.url, 'up{job="self"} == 1')
        time.sleep(0.3)
    assert result, "Prometheus never scraped its target"
