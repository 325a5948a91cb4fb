"""docs/metrics.md matches the metrics HLTHZ really registers: names, types, labels, buckets.

Every component's metrics are built on a fresh registry and exercised once, so every labelled
family has a sample to read its label names from. A metric added to the code without a row in
the doc, a row for a metric that no longer exists, or a changed type, label or default bucket
fails here.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from prometheus_client import CollectorRegistry, Metric

from hlthz.exporter import (
    DEFAULT_QUERY_BUCKETS,
    DEFAULT_REQUEST_BUCKETS,
    CacheMetrics,
    JobMetrics,
    UpstreamMetrics,
    instrument,
    instrument_dbapi,
    instrument_sqlalchemy,
)
from hlthz.exporter.multiprocess import scrape_registry
from hlthz.replay.capture.recorder import CaptureMetrics
from hlthz.replay.live_metrics import ReplayCollector
from hlthz.replay.timing import Recorder
from tests.exporter.conftest import call_wsgi

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
CAPTURE_PREFIX = "replay_capture_"
REPLAY_PREFIX = "hlthz_replay_"


# -- the doc ----------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(text: str, first_columns: tuple[str, ...]) -> Iterator[list[str]]:
    """Body rows (as cells) of every table whose header starts with ``first_columns``."""
    inside = False
    for line in text.splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        cells = _cells(line)
        if tuple(cells[: len(first_columns)]) == first_columns:
            inside = True
            continue
        if inside and not set(line) <= set("|-: "):
            yield cells


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """``{metric: (type, labels)}`` from every ``| metric | type | labels |`` table."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for cells in _tables(DOC.read_text(), ("metric", "type", "labels")):
        names = _names(cells[0])
        assert len(names) == 1, f"docs/metrics.md: one metric a row: {cells[0]!r}"
        assert names[0] not in out, f"docs/metrics.md: {names[0]} documented twice"
        out[names[0]] = (cells[1], frozenset(_names(cells[2])))
    return out


def documented_buckets() -> dict[str, tuple[float, ...]]:
    """``{histogram: boundaries}`` from the ``| histogram | default boundaries |`` table."""
    out = {}
    for cells in _tables(DOC.read_text(), ("histogram", "default boundaries")):
        (name,) = _names(cells[0])
        out[name] = tuple(float(b) for b in cells[1].split(","))
    return out


# -- the code ---------------------------------------------------------------------------------


def exported(families: Iterable[Metric]) -> dict[str, tuple[str, frozenset[str]]]:
    """``{metric: (type, labels)}`` as Prometheus sees them (counters end in ``_total``)."""
    out = {}
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        out[name] = (family.type, frozenset(labels))
    return out


def exercise_exporter(registry: CollectorRegistry, tmp_path: Path) -> None:
    """Use every exporter metric once: a request with an N+1, a pool, a cache, a job queue."""
    conn = instrument_dbapi(sqlite3.connect(tmp_path / "shop.db"), registry=registry)
    conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY)")

    upstream = UpstreamMetrics("customers", registry=registry)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        for product_id in range(5):  # one statement shape five times: an N+1
            conn.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchall()
        with upstream.call():  # one outbound call
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = instrument(app, registry=registry)
    status, _, _ = call_wsgi(wrapped, "/api/products/1")
    assert status.startswith("200")

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    instrument_sqlalchemy(engine, registry=registry, pool="primary")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
    engine.dispose()

    cache = CacheMetrics("products", registry=registry)
    cache.hit()
    cache.miss()
    cache.error()
    jobs = JobMetrics("emails", registry=registry)
    jobs.set_depth(3)
    with jobs.track("send_receipt"):
        pass
    jobs.retry("send_receipt")


@pytest.fixture(scope="module")
def doc() -> dict[str, tuple[str, frozenset[str]]]:
    return documented_metrics()


@pytest.fixture(scope="module")
def exporter_registry(tmp_path_factory: pytest.TempPathFactory) -> CollectorRegistry:
    registry = CollectorRegistry()
    exercise_exporter(registry, tmp_path_factory.mktemp("exporter"))
    return registry


def _compare(
    doc: dict[str, tuple[str, frozenset[str]]],
    code: dict[str, tuple[str, frozenset[str]]],
    documented: set[str],
) -> None:
    undocumented = sorted(set(code) - set(doc))
    assert not undocumented, f"registered but not in docs/metrics.md: {undocumented}"
    gone = sorted(documented - set(code))
    assert not gone, f"in docs/metrics.md but never registered: {gone}"
    wrong = {
        name: {"doc": (doc[name][0], sorted(doc[name][1])), "code": (typ, sorted(labels))}
        for name, (typ, labels) in code.items()
        if doc[name] != (typ, labels)
    }
    assert not wrong, f"type or labels differ from docs/metrics.md: {wrong}"


def test_exporter_metrics_are_the_documented_ones(
    doc: dict[str, tuple[str, frozenset[str]]],
    exporter_registry: CollectorRegistry,
    tmp_path: Path,
) -> None:
    code = exported(exporter_registry.collect())
    # Multiprocess mode reads through a registry of its own: process metrics and the live
    # worker count come from other collectors there.
    code.update(exported(scrape_registry(str(tmp_path)).collect()))
    documented = {n for n in doc if not n.startswith((CAPTURE_PREFIX, REPLAY_PREFIX))}
    _compare(doc, code, documented)


def test_capture_recorder_metrics_are_the_documented_ones(
    doc: dict[str, tuple[str, frozenset[str]]],
) -> None:
    registry = CollectorRegistry()
    CaptureMetrics.for_registry(registry).dropped.labels("error").inc()
    code = exported(registry.collect())
    _compare(doc, code, {n for n in doc if n.startswith(CAPTURE_PREFIX)})


def test_replay_metrics_are_the_documented_ones(
    doc: dict[str, tuple[str, frozenset[str]]],
) -> None:
    recorder = Recorder()
    recorder.record("GET /api/products/{id}", 0.0, 0.0005, 0.01, 0.0105, 200)
    recorder.skip("method")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplayCollector(recorder, "docs", lambda: 0))
    code = exported(registry.collect())
    _compare(doc, code, {n for n in doc if n.startswith(REPLAY_PREFIX)})


def test_series_folded_names_every_labelled_metric(
    doc: dict[str, tuple[str, frozenset[str]]], exporter_registry: CollectorRegistry
) -> None:
    folded = {
        sample.labels["metric"]
        for family in exporter_registry.collect()
        if family.name == "hlthz_exporter_series_folded"
        for sample in family.samples
    }
    labelled = {
        name.removesuffix("_total") if typ == "counter" else name
        for name, (typ, labels) in doc.items()
        if labels and not name.startswith(("hlthz_", CAPTURE_PREFIX))
    }
    assert folded == labelled


def _bounds(registry: CollectorRegistry, histogram: str) -> tuple[float, ...]:
    bounds = {
        float(sample.labels["le"])
        for family in registry.collect()
        for sample in family.samples
        if sample.name == f"{histogram}_bucket"
    }
    assert bounds, f"{histogram} has no bucket samples"
    return tuple(sorted(b for b in bounds if not math.isinf(b)))


def test_documented_buckets_are_the_registered_ones(exporter_registry: CollectorRegistry) -> None:
    buckets = documented_buckets()
    assert buckets["http_request_duration_seconds"] == DEFAULT_REQUEST_BUCKETS
    assert buckets["database_query_duration_seconds"] == DEFAULT_QUERY_BUCKETS

    recorder = Recorder()
    recorder.record("GET /", 0.0, 0.0005, 0.01, 0.0105, 200)
    replay = CollectorRegistry(auto_describe=False)
    replay.register(ReplayCollector(recorder, "docs", lambda: 0))

    registered = {
        name: _bounds(replay if name.startswith(REPLAY_PREFIX) else exporter_registry, name)
        for name in buckets
    }
    assert buckets == registered
    histograms = {n for n, (typ, _) in documented_metrics().items() if typ == "histogram"}
    assert set(buckets) == histograms, "every histogram needs its row in the buckets table"
