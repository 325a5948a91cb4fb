"""One route grouping: :class:`hlthz.routes.Routes` names a request the same way everywhere.

The proof at the end sends one capture through ``replay inspect``, ``replay run`` (the real
engine on locust, against a loopback target) and the exporter's fallback for a bare WSGI app,
and asserts the three name every request alike, with and without route templates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError, InputError
from hlthz.exporter import instrument
from hlthz.replay.capture.inspect import inspect_capture
from hlthz.routes import Routes, normalize_path
from tests.replay.conftest import start_target, write_capture

PATHS = [
    "/delay/10",
    "/delay/0.5",
    "/users/me",
    "/users/42?tab=orders",
    "/users/9f1c4a2e-7d3b-4c1a-9e8f-0123456789ab",
    "/files/a/b/c.txt",
    "http://alice:secret@shop.example/users/7",
]


def test_normalize_path_replaces_id_like_segments() -> None:
    assert normalize_path("/api/products/42?x=1") == "/api/products/{id}"
    assert normalize_path("/delay/0.1") == "/delay/{id}"
    assert normalize_path("/u/9f1c4a2e-7d3b-4c1a-9e8f-0123456789ab/x") == "/u/{uuid}/x"
    assert normalize_path("/blob/0123456789abcdef0123") == "/blob/{hash}"
    assert normalize_path("/orders/ab-123-x") == "/orders/{param}"
    assert normalize_path("/api/categories") == "/api/categories"
    deep = "/" + "/".join("a" * 20)
    assert normalize_path(deep).endswith("/{rest}")


def test_templates_win_by_specificity_in_every_framework_syntax() -> None:
    routes = Routes(
        [
            "/users/{user_id}",
            "/users/me",
            "/files/{rest:path}",
            "/flask/<int:item_id>/edit",
            "/django/<slug:slug>/",
            "/rails/:id",
        ]
    )
    assert routes.template("/users/me") == "/users/me"
    assert routes.template("/users/42?tab=1") == "/users/{user_id}"
    assert routes.template("/files/a/b/c.txt") == "/files/{rest:path}"
    assert routes.template("/flask/3/edit") == "/flask/<int:item_id>/edit"
    assert routes.template("/django/blue-widget/") == "/django/<slug:slug>/"
    assert routes.template("/rails/abc") == "/rails/:id"
    # No template matches: the normalizer names it, as without templates.
    assert routes.template("/other/123") == "/other/{id}"
    # Absolute-form targets lose scheme, host and userinfo.
    assert routes.name("get", "http://alice:s3cret@host/users/7") == "GET /users/{user_id}"
    assert routes("/users/8") == "/users/{user_id}"  # a path -> route callable


def test_openapi_document_of_a_real_fastapi_app(tmp_path: Path) -> None:
    app = FastAPI(servers=[{"url": "https://api.example/v2"}])
    router = APIRouter()

    @router.get("/products/{product_id}")
    def product(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    @router.get("/products/featured")
    def featured() -> list[int]:
        return []

    app.include_router(router, prefix="/shop")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(app.openapi()))
    routes = Routes.from_file(spec)
    assert routes.templates == ["/v2/shop/products/featured", "/v2/shop/products/{product_id}"]
    assert routes.template("/v2/shop/products/12") == "/v2/shop/products/{product_id}"

    yaml_spec = tmp_path / "openapi.yaml"
    yaml_spec.write_text("openapi: 3.0.0\nbasePath: /x\npaths:\n  /a/{id}: {}\n")
    assert Routes.from_file(yaml_spec).templates == ["/a/{id}"]  # OpenAPI 3 has no basePath
    swagger = tmp_path / "swagger.yaml"
    swagger.write_text("swagger: '2.0'\nbasePath: /x/\npaths:\n  /a/{id}: {}\n")
    assert Routes.from_file(swagger).templates == ["/x/a/{id}"]


def test_template_files_and_their_errors(tmp_path: Path) -> None:
    good = tmp_path / "routes.txt"
    good.write_text("# our routes\n/a/{id}\n\n/b\n")
    assert Routes.from_file(good).templates == ["/b", "/a/{id}"]

    bad = tmp_path / "bad.txt"
    bad.write_text("/a/{id}\nb/{id}\n")
    with pytest.raises(InputError, match=r"bad\.txt:2: 'b/\{id\}' is not a route template"):
        Routes.from_file(bad)
    not_openapi = tmp_path / "x.json"
    not_openapi.write_text('{"swagger": 2}')
    with pytest.raises(InputError, match=r"x\.json: neither an OpenAPI document"):
        Routes.from_file(not_openapi)
    broken = tmp_path / "broken.yaml"
    broken.write_text("paths: [unclosed\n")
    with pytest.raises(InputError, match=r"broken\.yaml:\d+: not valid YAML"):
        Routes.from_file(broken)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00/a")
    with pytest.raises(InputError, match="not UTF-8"):
        Routes.from_file(binary)
    with pytest.raises(InputError, match="no such file"):
        Routes.from_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="must start with '/'"):
        Routes(["users/{id}"])


def _exporter_routes(routes: Routes) -> set[str]:
    """Route labels the exporter gives PATHS on a bare WSGI app named by ``routes``."""

    def bare(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    registry = CollectorRegistry()
    app = instrument(bare, registry=registry, normalize_paths=routes)
    for path in PATHS:
        target = path.split("://", 1)[1].partition("/")[2] if "://" in path else path[1:]
        path_info, _, query = ("/" + target).partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
        }
        body = app(environ, lambda *a: None)
        b"".join(body)
        body.close()  # type: ignore[attr-defined]  # a WSGI server's last call: the request ends
    return {
        f"GET {sample.labels['route']}"
        for metric in registry.collect()
        if metric.name == "http_request_duration_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
    }


@pytest.mark.slow
@pytest.mark.parametrize("templates", [False, True], ids=["normalizer", "templates"])
def test_inspect_run_and_exporter_name_every_request_alike(tmp_path: Path, templates: bool) -> None:
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.01, "GET", p) for i, p in enumerate(PATHS)]
    )
    route_file = tmp_path / "routes.txt"
    route_file.write_text("/users/{id}\n/users/me\n/files/{rest:path}\n")
    routes = Routes.from_file(route_file) if templates else Routes()

    summary = inspect_capture(capture, routes=routes, top=100)
    inspected = {item["route"] for item in summary["top_routes"]}
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "hlthz", "replay", "run", str(capture), "--no-progress"]
    command += ["--report", str(report)]
    if templates:
        command += ["--routes", str(route_file)]
    with start_target(tmp_path) as target:
        command += ["--target", target.url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    replayed = {route["route"] for route in json.loads(report.read_text())["routes"]}

    expected = {routes.name("GET", p) for p in PATHS}
    assert inspected == replayed == _exporter_routes(routes) == expected
    if templates:
        assert "GET /users/{id}" in expected and "GET /users/me" in expected
    else:
        assert "GET /delay/{id}" in expected and len(expected) == 5
