"""Label cardinality stays bounded whatever clients send."""

from __future__ import annotations

import io
import random
import string

import flask
import pytest
from prometheus_client import CollectorRegistry

from hlthz.exporter import instrument
from tests.conftest import SOAK
from tests.exporter.conftest import call_wsgi, label_sets, value

COUNT = "http_request_duration_seconds_count"
#: Random paths and ids sent (``make soak``: 100,000).
PATHS = 100_000 if SOAK else 25_000


def _series(registry: CollectorRegistry) -> int:
    return sum(len(list(metric.samples)) for metric in registry.collect())


def _random_word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_.", k=rng.randint(1, 24)))


@pytest.mark.slow
def test_random_paths_and_ids_add_a_handful_of_series(registry: CollectorRegistry) -> None:
    app = flask.Flask("cardinality")

    @app.get("/api/products/<int:product_id>")
    def product(product_id: int) -> str:
        return "ok"

    @app.get("/api/users/<user_id>/orders")
    def orders(user_id: str) -> str:
        return "ok"

    instrument(app, registry=registry)
    wsgi = app.wsgi_app  # the instrumented WSGI callable, without Werkzeug's test client
    rng = random.Random(20261126)
    words = [_random_word(rng) for _ in range(5000)]
    methods = ["GET", "GET", "GET", "POST", "BREW", "X-" + _random_word(rng)]
    call_wsgi(wsgi, "/api/products/1")  # every metric family exists before we count
    before = _series(registry)
    base = {
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        return None

    for i in range(PATHS):
        kind = i % 3
        if kind == 0:
            path = f"/{rng.choice(words)}/{rng.getrandbits(40):x}/{rng.choice(words)}"
        elif kind == 1:
            path = f"/api/products/{rng.getrandbits(40)}"
        else:
            path = f"/api/users/{rng.getrandbits(64):x}/orders"
        environ = dict(base, PATH_INFO=path, REQUEST_METHOD=rng.choice(methods))
        result = wsgi(environ, start_response)
        for _ in result:
            pass
        result.close()  # type: ignore[attr-defined]
    after = _series(registry)

    routes = {s["route"] for s in label_sets(registry, COUNT)}
    assert routes == {"/api/products/<int:product_id>", "/api/users/<user_id>/orders", "_unmatched"}
    # New label sets: a few methods x statuses (GET/POST/_OTHER x 200/404/405), each a
    # histogram of 15 samples, plus one queries-per-request histogram per route and one
    # response-size histogram (12 samples) per method and route.
    new_label_sets = len(label_sets(registry, COUNT)) - 1
    assert new_label_sets <= 8
    assert after - before <= 8 * 15 + 2 * 14 + 8 * 12 + 4
    total = sum(value(registry, COUNT, **s) for s in label_sets(registry, COUNT))
    assert total == PATHS + 1


def test_series_cap_folds_into_overflow_and_counts() -> None:
    registry = CollectorRegistry()

    def bare(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [])  # type: ignore[operator]
        return [b"x"]

    # Literal words survive normalization: only the cap bounds them.
    app = instrument(bare, registry=registry, normalize_paths=True, max_series_per_metric=20)
    for i in range(500):
        call_wsgi(app, f"/word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}")

    sets = label_sets(registry, COUNT)
    assert len([s for s in sets if s["route"] != "_overflow"]) == 20
    assert [s["route"] for s in sets].count("_overflow") == 1
    assert sum(value(registry, COUNT, **s) for s in sets) == 500
    folded = value(
        registry, "hlthz_exporter_series_folded_total", metric="http_request_duration_seconds"
    )
    assert folded == 500 - 20
