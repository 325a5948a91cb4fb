"""/metrics: auth, gzip, OpenMetrics; cache and job helpers; the memory limit."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hlthz.exporter import CacheMetrics, ConfigError, JobMetrics, instrument, metrics_app
from hlthz.exporter.memory import memory_limit_bytes
from tests.exporter.conftest import call_wsgi, value


def _bare(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [])  # type: ignore[operator]
    return [b"app"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_auth(registry: CollectorRegistry) -> None:
    app = instrument(_bare, registry=registry, metrics_auth="s3cret")
    status, headers, _ = call_wsgi(app, "/metrics")
    assert status.startswith("401")
    assert ("WWW-Authenticate", "Bearer") in headers
    assert call_wsgi(app, "/metrics", headers={"Authorization": "Bearer nope"})[0].startswith("401")
    status, _, body = call_wsgi(app, "/metrics", headers={"Authorization": "Bearer s3cret"})
    assert status == "200 OK"
    assert b"http_request_duration_seconds" in body


def test_basic_auth(registry: CollectorRegistry) -> None:
    app = instrument(_bare, registry=registry, metrics_auth=("prom", "pa:ss"))
    assert (
        call_wsgi(app, "/metrics", headers={"Authorization": _basic("prom", "bad")})[0][:3] == "401"
    )
    assert call_wsgi(app, "/metrics", headers={"Authorization": "Basic %%%"})[0][:3] == "401"
    assert (
        call_wsgi(app, "/metrics", headers={"Authorization": _basic("prom", "pa:ss")})[0][:3]
        == "200"
    )


def test_bad_auth_option_is_a_config_error(registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigError, match="metrics_auth"):
        instrument(_bare, registry=registry, metrics_auth=("user",))  # type: ignore[arg-type]


def test_gzip_and_openmetrics(registry: CollectorRegistry) -> None:
    app = instrument(_bare, registry=registry)
    call_wsgi(app, "/x")
    status, headers, body = call_wsgi(app, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert ("Content-Encoding", "gzip") in headers
    text = gzip.decompress(body).decode()
    assert (
        'http_request_duration_seconds_count{method="GET",route="_unmatched",status_code="200"} 1.0'
        in text
    )
    # Prometheus's own header, and explicit refusals (q=0) that a substring test would miss.
    for encoding, gzipped in [
        ("gzip", True),
        ("br, GZIP;q=0.5", True),
        ("gzip;q=0, identity", False),
        ("x-gzip-like, identity", False),
    ]:
        _, headers, _ = call_wsgi(app, "/metrics", headers={"Accept-Encoding": encoding})
        assert (("Content-Encoding", "gzip") in headers) is gzipped, encoding
    status, headers, body = call_wsgi(
        app, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == "200 OK"
    assert dict(headers)["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_standalone_metrics_app(registry: CollectorRegistry) -> None:
    CacheMetrics("products", registry=registry).hit()
    status, _, body = call_wsgi(metrics_app(registry), "/anything")
    assert status == "200 OK"
    assert b'cache_requests_total{cache="products",result="hit"} 1.0' in body


def test_standalone_asgi_metrics_app_speaks_lifespan(registry: CollectorRegistry) -> None:
    from starlette.testclient import TestClient

    CacheMetrics("products", registry=registry).miss()
    # The context manager runs the lifespan startup and shutdown an ASGI server sends.
    with TestClient(metrics_app(registry, asgi=True)) as client:
        response = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert 'cache_requests_total{cache="products",result="miss"} 1.0' in response.text


def test_cache_metrics(registry: CollectorRegistry) -> None:
    cache = CacheMetrics("products", registry=registry)
    cache.hit()
    cache.miss()
    cache.record(True)
    cache.error()
    store = {"a": 1}
    get = cache.lookup(store.get)
    assert get("a") == 1
    assert get("b") is None

    def broken(key: str) -> int:
        raise ConnectionError("redis down")

    assert cache.lookup(broken, swallow_errors=True)("a") is None
    with pytest.raises(ConnectionError):
        cache.lookup(broken)("a")
    assert value(registry, "cache_requests_total", cache="products", result="hit") == 3
    assert value(registry, "cache_requests_total", cache="products", result="miss") == 2
    assert value(registry, "cache_errors_total", cache="products") == 3


def test_job_metrics(registry: CollectorRegistry) -> None:
    jobs = JobMetrics("emails", registry=registry)
    jobs.set_depth(7)
    with jobs.track("receipt"):
        pass
    with pytest.raises(KeyError), jobs.track("receipt"):
        raise KeyError("missing order")
    jobs.retry("receipt")
    assert value(registry, "job_queue_depth", queue="emails") == 7
    for outcome in ("success", "failure", "retry"):
        assert value(registry, "jobs_total", queue="emails", job="receipt", outcome=outcome) == 1
    assert value(registry, "job_duration_seconds_count", queue="emails", job="receipt") == 2


def _cgroup_tree(
    tmp_path: Path, cgroup: str, limits: dict[str, str], meminfo_kb: int
) -> tuple[Path, Path]:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "meminfo").write_text(f"MemTotal:       {meminfo_kb} kB\nMemFree: 1 kB\n")
    root = tmp_path / "cgroup"
    for relative, limit in limits.items():
        directory = root / relative
        directory.mkdir(parents=True, exist_ok=True)
        (
            directory
            / ("memory.max" if not relative.startswith("memory") else "memory.limit_in_bytes")
        ).write_text(limit)
    return proc, root


def test_memory_limit_cgroup_v2_tightest_ancestor(tmp_path: Path) -> None:
    proc, root = _cgroup_tree(
        tmp_path,
        "0::/app.slice/web.service\n",
        {"app.slice": "1073741824\n", "app.slice/web.service": "max\n"},
        8_000_000,
    )
    assert memory_limit_bytes(proc, root) == 1073741824


def test_memory_limit_cgroup_v1_and_memtotal(tmp_path: Path) -> None:
    proc, root = _cgroup_tree(
        tmp_path, "4:memory:/docker/abc\n", {"memory": "536870912"}, 8_000_000
    )
    assert memory_limit_bytes(proc, root) == 536870912
    other = tmp_path / "other"
    other.mkdir()
    proc, root = _cgroup_tree(other, "4:memory:/\n", {"memory": str(2**63 - 4096)}, 4_000)
    assert memory_limit_bytes(proc, root) == 4_000 * 1024


def test_memory_limit_is_exported(registry: CollectorRegistry) -> None:
    instrument(_bare, registry=registry)
    limit = value(registry, "process_memory_limit_bytes")
    assert limit == memory_limit_bytes()
    assert limit > 0
    assert value(registry, "process_resident_memory_bytes") > 0
