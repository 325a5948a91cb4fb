"""Route templates per framework, unmatched paths, unknown methods, errors, exclusions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import flask
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

from hlthz.exporter import ConfigError, instrument
from tests.exporter.conftest import call_wsgi, label_sets, value

COUNT = "http_request_duration_seconds_count"


def routes_seen(registry: CollectorRegistry) -> set[tuple[str, str, str]]:
    return {(s["method"], s["route"], s["status_code"]) for s in label_sets(registry, COUNT)}


async def _get_all(app: object, requests: list[tuple[str, str]]) -> list[int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return [(await client.request(m, url)).status_code for m, url in requests]


def asgi_requests(app: object, *requests: tuple[str, str]) -> list[int]:
    return asyncio.run(_get_all(app, list(requests)))


# -- Flask ------------------------------------------------------------------------------------


def test_flask_route_templates(registry: CollectorRegistry) -> None:
    app = flask.Flask("shop")
    api = flask.Blueprint("api", "shop", url_prefix="/api")

    @api.get("/products/<int:product_id>")
    def product(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    @app.route("/boom", methods=["GET", "POST"])
    def boom() -> str:
        raise RuntimeError("boom")

    app.register_blueprint(api)
    assert instrument(app, registry=registry) is app

    for pid in (1, 2, 987654):
        assert call_wsgi(app, f"/api/products/{pid}")[0] == "200 OK"
    assert call_wsgi(app, "/api/products/abc")[0].startswith("404")
    assert call_wsgi(app, "/boom")[0].startswith("500")
    assert call_wsgi(app, "/boom", method="BREW")[0].startswith("405")

    assert routes_seen(registry) == {
        ("GET", "/api/products/<int:product_id>", "200"),
        ("GET", "_unmatched", "404"),
        ("GET", "/boom", "500"),
        ("_OTHER", "_unmatched", "405"),
    }
    assert (
        value(
            registry, COUNT, method="GET", route="/api/products/<int:product_id>", status_code="200"
        )
        == 3
    )
    assert value(registry, "http_requests_in_flight", method="GET") == 0


def test_flask_exception_recorded_as_500_and_reraised(registry: CollectorRegistry) -> None:
    app = flask.Flask("raising")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    class Boom(Exception):
        pass

    @app.get("/fail")
    def fail() -> str:
        raise Boom("original")

    instrument(app, registry=registry)
    with pytest.raises(Boom, match="original"):
        call_wsgi(app, "/fail")
    assert value(registry, COUNT, method="GET", route="/fail", status_code="500") == 1
    assert value(registry, "http_requests_in_flight", method="GET") == 0


# -- Starlette / FastAPI -------------------------------------------------------------------------


def test_fastapi_routers_and_mounts(registry: CollectorRegistry) -> None:
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/products/{product_id}")
    def product(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    app.include_router(router)
    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.mount("/v2", sub)
    assert instrument(app, registry=registry) is app

    @app.get("/late/{x}")  # added after instrument(): still templated
    async def late(x: str) -> dict[str, str]:
        return {"x": x}

    statuses = asgi_requests(
        app,
        ("GET", "/api/products/1"),
        ("GET", "/api/products/2"),
        ("GET", "/v2/things/abc"),
        ("GET", "/late/zzz"),
        ("GET", "/nowhere/17"),
        ("GET", "/v2/nowhere"),
        ("PURGE", "/api/products/3"),
        ("POST", "/api/products/3"),
    )
    assert statuses == [200, 200, 200, 200, 404, 404, 405, 405]
    assert routes_seen(registry) == {
        ("GET", "/api/products/{product_id}", "200"),
        ("GET", "/v2/things/{thing_id}", "200"),
        ("GET", "/late/{x}", "200"),
        ("GET", "_unmatched", "404"),
        ("_OTHER", "/api/products/{product_id}", "405"),
        ("POST", "/api/products/{product_id}", "405"),
    }


def test_starlette_mounts_errors_and_streaming(registry: CollectorRegistry) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi " + request.path_params["name"])

    async def crash(request: Request) -> PlainTextResponse:
        raise ValueError("crash")

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.05)
                yield b"chunk%d" % i

        return StreamingResponse(chunks())

    inner = Starlette(routes=[Route("/hello/{name}", hello)])
    app = Starlette(
        routes=[
            Mount("/users/{user_id}", routes=[Route("/stream", stream)]),
            Mount("/inner", app=inner),
            Route("/crash", crash),
        ]
    )
    assert instrument(app, registry=registry) is app
    statuses = asgi_requests(
        app, ("GET", "/inner/hello/ann"), ("GET", "/users/42/stream"), ("GET", "/crash")
    )
    assert statuses == [200, 200, 500]
    assert routes_seen(registry) == {
        ("GET", "/inner/hello/{name}", "200"),
        ("GET", "/users/{user_id}/stream", "200"),
        ("GET", "/crash", "500"),
    }
    # Timed to the last byte: the three 50 ms pauses are inside the measured duration.
    streamed = value(
        registry,
        "http_request_duration_seconds_sum",
        method="GET",
        route="/users/{user_id}/stream",
        status_code="200",
    )
    assert streamed >= 0.15


def test_instrument_after_app_started_wraps_built_stack(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    assert asgi_requests(app, ("GET", "/items/1")) == [200]  # builds the middleware stack
    assert instrument(app, registry=registry) is app
    assert asgi_requests(app, ("GET", "/items/2")) == [200]
    assert routes_seen(registry) == {("GET", "/items/{item_id}", "200")}


def test_excluded_paths_and_metrics_not_measured(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    instrument(app, registry=registry, exclude_paths=["/health"])
    assert asgi_requests(app, ("GET", "/health"), ("GET", "/metrics")) == [200, 200]
    assert routes_seen(registry) == set()


def test_double_instrumentation_is_refused(registry: CollectorRegistry) -> None:
    app = flask.Flask("twice")
    instrument(app, registry=registry)
    with pytest.raises(ConfigError, match="already instrumented"):
        instrument(app, registry=registry)


# -- Django -----------------------------------------------------------------------------------


def test_django_route_templates(registry: CollectorRegistry, django_handler: object) -> None:
    app = instrument(django_handler, registry=registry)
    assert app is django_handler  # instrumented in place, like the other frameworks
    assert call_wsgi(app, "/api/items/7")[0] == "200 OK"
    assert call_wsgi(app, "/api/items/8")[0] == "200 OK"
    assert call_wsgi(app, "/api/items/8/reviews/great-one")[0] == "200 OK"
    assert call_wsgi(app, "/api/items/x")[0].startswith("404")
    assert call_wsgi(app, "/boom")[0].startswith("500")
    assert routes_seen(registry) == {
        ("GET", "/api/items/<int:item_id>", "200"),
        ("GET", "/api/items/<int:item_id>/reviews/<slug:review_id>", "200"),
        ("GET", "_unmatched", "404"),
        ("GET", "/boom", "500"),
    }


# -- bare callables ---------------------------------------------------------------------------


def test_bare_wsgi_normalizer_is_opt_in(registry: CollectorRegistry) -> None:
    def bare(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    plain = instrument(bare, registry=registry)
    call_wsgi(plain, "/users/1")
    other = CollectorRegistry()
    normalized = instrument(bare, registry=other, normalize_paths=True)
    call_wsgi(normalized, "/users/1")
    call_wsgi(normalized, "/users/2/files/5f0c8a0e-6f7b-4b8e-9d52-0c8a0e6f7b4b")
    assert routes_seen(registry) == {("GET", "_unmatched", "200")}
    assert routes_seen(other) == {
        ("GET", "/users/{id}", "200"),
        ("GET", "/users/{id}/files/{uuid}", "200"),
    }


def test_bare_asgi_app(registry: CollectorRegistry) -> None:
    async def bare(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 201, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"made"})  # type: ignore[operator]

    app = instrument(bare, registry=registry, normalize_paths=True)
    assert app is not bare
    assert asgi_requests(app, ("POST", "/orders/12345")) == [201]
    assert routes_seen(registry) == {("POST", "/orders/{id}", "201")}


def test_in_flight_counts_a_running_request(registry: CollectorRegistry) -> None:
    seen: list[float] = []

    def slow(environ: dict[str, object], start_response: object) -> list[bytes]:
        seen.append(value(registry, "http_requests_in_flight", method="PUT"))
        time.sleep(0)
        start_response("204 No Content", [])  # type: ignore[operator]
        return []

    app = instrument(slow, registry=registry)
    call_wsgi(app, "/x", method="PUT")
    assert seen == [1.0]
    assert value(registry, "http_requests_in_flight", method="PUT") == 0


def test_instrumentation_failure_never_reaches_the_app(registry: CollectorRegistry) -> None:
    def bare(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("X-App", "yes")])  # type: ignore[operator]
        return [b"served"]

    def broken_normalizer(path: str) -> str:
        raise RuntimeError("bug in a custom normalizer")

    app = instrument(bare, registry=registry, normalize_paths=broken_normalizer)
    status, headers, body = call_wsgi(app, "/users/1")
    assert (status, headers, body) == ("200 OK", [("X-App", "yes")], b"served")
    assert value(registry, "hlthz_exporter_internal_errors_total") == 1
    # The request is still counted, under the fallback route.
    assert routes_seen(registry) == {("GET", "_unmatched", "200")}


def test_django_asgi_handler(registry: CollectorRegistry, django_handler: object) -> None:
    from django.core.handlers.asgi import ASGIHandler

    handler = ASGIHandler()
    app = instrument(handler, registry=registry)
    assert app is handler
    assert asgi_requests(app, ("GET", "/api/items/3"), ("GET", "/nope")) == [200, 404]
    assert routes_seen(registry) == {
        ("GET", "/api/items/<int:item_id>", "200"),
        ("GET", "_unmatched", "404"),
    }


def test_metrics_scrapes_measured_when_asked(registry: CollectorRegistry) -> None:
    app = flask.Flask("measured")
    instrument(app, registry=registry, measure_metrics=True)
    status, _, body = call_wsgi(app, "/metrics")
    assert status == "200 OK"
    assert b"http_request_duration_seconds" in body
    assert routes_seen(registry) == {("GET", "/metrics", "200")}


def test_wsgi_body_failure_after_headers_is_a_500(registry: CollectorRegistry) -> None:
    def streaming(environ: dict[str, object], start_response: object) -> Iterator[bytes]:
        start_response("200 OK", [])  # type: ignore[operator]
        yield b"first chunk"
        raise OSError("backend went away mid-stream")

    app = instrument(streaming, registry=registry)
    with pytest.raises(OSError, match="mid-stream"):
        call_wsgi(app, "/export")
    assert routes_seen(registry) == {("GET", "_unmatched", "500")}
    assert value(registry, "http_requests_in_flight", method="GET") == 0
