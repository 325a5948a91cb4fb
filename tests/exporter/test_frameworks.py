"""Framework details, in-process: Django ORM queries measured by instrument(), re_path and DRF
routes as templates, FastAPI's own routes and mounts named, WSGI paths decoded as UTF-8.

The same features on third-party apps under real servers: test_real_apps.py.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles

from hlthz.exporter import instrument
from tests.exporter.conftest import call_wsgi, label_sets, value
from tests.exporter.test_routes import asgi_requests, routes_seen

QUERIES = "http_request_database_queries"


def queries_of(registry: CollectorRegistry, route: str) -> tuple[float, float]:
    """(requests, queries) recorded for ``route``."""
    return (
        value(registry, f"{QUERIES}_count", route=route),
        value(registry, f"{QUERIES}_sum", route=route),
    )


def flagged(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (labels["route"], labels["query_type"]): value(
            registry, "database_n_plus_one_total", **labels
        )
        for labels in label_sets(registry, "database_n_plus_one_total")
    }


# -- Django routes ----------------------------------------------------------------------------


def test_django_re_path_and_drf_router_routes_are_templates(
    registry: CollectorRegistry, django_handler: object
) -> None:
    app = instrument(django_handler, registry=registry)
    for path in (
        "/archive/2024/",
        "/archive/2024/05/",
        "/légal/7/".encode().decode("latin-1"),  # as a PEP 3333 server passes it
        "/drf/",
        "/drf/books/",
        "/drf/books/3/",
        "/drf/books.json",
    ):
        status = call_wsgi(app, path)[0]
        assert status == "200 OK", (path, status)
    assert routes_seen(registry) == {
        ("GET", "/archive/{year}/", "200"),
        ("GET", "/archive/{year}/{month}/", "200"),
        ("GET", "/légal/{arg0}/", "200"),
        ("GET", "/drf/", "200"),
        ("GET", "/drf/books/", "200"),
        ("GET", "/drf/books/{pk}/", "200"),
        ("GET", "/drf/books.{format}", "200"),
    }


# -- Django ORM -------------------------------------------------------------------------------


def test_django_queries_counted_per_request_and_n_plus_one_flagged(
    registry: CollectorRegistry, django_handler: object
) -> None:
    app = instrument(django_handler, registry=registry)
    for _ in range(2):
        assert call_wsgi(app, "/orm/n-plus-one")[0] == "200 OK"
        assert call_wsgi(app, "/orm/joined")[0] == "200 OK"
    assert call_wsgi(app, "/orm/two-databases")[0] == "200 OK"

    # 6 books: one query for them and one per book for its author.
    assert queries_of(registry, "/orm/n-plus-one") == (2, 2 * 7)
    assert queries_of(registry, "/orm/joined") == (2, 2 * 1)
    # One query on each alias.
    assert queries_of(registry, "/orm/two-databases") == (1, 2)
    assert flagged(registry) == {("/orm/n-plus-one", "select_django_app_author"): 2}
    timed = value(
        registry, "database_query_duration_seconds_count", query_type="select_django_app_author"
    )
    assert timed == 2 * 6 + 2  # the author look-ups, and the count on each alias
    assert value(registry, "hlthz_exporter_internal_errors_total") == 0


def test_django_queries_of_concurrent_server_threads_stay_apart(
    registry: CollectorRegistry, django_handler: object
) -> None:
    app = instrument(django_handler, registry=registry)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for _ in range(3):
                assert call_wsgi(app, "/orm/n-plus-one")[0] == "200 OK"
                assert call_wsgi(app, "/orm/joined")[0] == "200 OK"
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            from django.db import connections

            connections.close_all()

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert queries_of(registry, "/orm/n-plus-one") == (12, 12 * 7)
    assert queries_of(registry, "/orm/joined") == (12, 12 * 1)


def test_django_query_in_an_own_thread_is_timed_not_counted(
    registry: CollectorRegistry, django_handler: object
) -> None:
    app = instrument(django_handler, registry=registry)
    assert call_wsgi(app, "/orm/thread")[0] == "200 OK"
    assert queries_of(registry, "/orm/thread") == (1, 1)
    timed = value(
        registry, "database_query_duration_seconds_count", query_type="select_django_app_author"
    )
    assert timed == 1  # the thread's count(*) on authors


def test_django_async_view_queries_counted(registry: CollectorRegistry, django_db: None) -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF="tests.exporter.django_urls"):
        app = instrument(ASGIHandler(), registry=registry)
        assert asgi_requests(app, ("GET", "/orm/async"), ("GET", "/orm/joined")) == [200, 200]
    assert queries_of(registry, "/orm/async") == (1, 2)
    assert queries_of(registry, "/orm/joined") == (1, 1)


def test_django_wrapper_keeps_application_execute_wrappers_working(
    registry: CollectorRegistry, django_handler: object
) -> None:
    from django.db import connection

    from tests.exporter.django_app.models import Author

    instrument(django_handler, registry=registry)
    seen: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    connection.close()
    # The connection connects inside the application's block: HLTHZ's wrapper is added then,
    # and the block must still remove its own wrapper, not HLTHZ's.
    with connection.execute_wrapper(spy):
        assert Author.objects.count() == 3
    assert len(seen) == 1
    assert spy not in connection.execute_wrappers
    assert [type(w).__name__ for w in connection.execute_wrappers] == ["DjangoQueries"]
    Author.objects.count()
    assert len(seen) == 1
    connection.close()


def test_django_second_registry_does_not_double_count(django_handler: object) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    first, second = CollectorRegistry(), CollectorRegistry()
    app = instrument(django_handler, registry=first)
    other = instrument(WSGIHandler(), registry=second)
    call_wsgi(app, "/orm/n-plus-one")
    call_wsgi(other, "/orm/joined")
    assert queries_of(first, "/orm/n-plus-one") == (1, 7)
    assert queries_of(second, "/orm/joined") == (1, 1)
    # Every query is timed into both registries.
    for registry in (first, second):
        count = value(
            registry,
            "database_query_duration_seconds_count",
            query_type="select_django_app_author",
        )
        assert count == 6


# -- FastAPI ----------------------------------------------------------------------------------


def test_fastapi_own_routes_add_route_and_static_files_are_named(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    (tmp_path / "app.css").write_text("body {}")
    (tmp_path / "café.txt").write_text("crème")
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async def legacy(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    app.add_route("/legacy/{name}", legacy)
    app.add_route("/old/{name}", legacy)  # one endpoint, two routes
    app.mount("/static", StaticFiles(directory=tmp_path), name="static")
    sub = FastAPI()
    app.mount("/v2", sub)
    instrument(app, registry=registry)

    statuses = asgi_requests(
        app,
        ("GET", "/items/1"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/legacy/a"),
        ("GET", "/old/b"),
        ("GET", "/static/app.css"),
        ("GET", "/static/caf%C3%A9.txt"),
        ("GET", "/static/missing.css"),
        ("GET", "/v2/openapi.json"),
        ("GET", "/v2/nothing"),
        ("GET", "/nowhere"),
    )
    assert statuses == [200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 200, 404, 404]
    assert routes_seen(registry) == {
        ("GET", "/items/{item_id}", "200"),
        ("GET", "/docs", "200"),
        ("GET", "/docs/oauth2-redirect", "200"),
        ("GET", "/redoc", "200"),
        ("GET", "/openapi.json", "200"),
        ("GET", "/legacy/{name}", "200"),
        ("GET", "/old/{name}", "200"),
        ("GET", "/static/{path}", "200"),
        ("GET", "/static/{path}", "404"),
        ("GET", "/v2/openapi.json", "200"),
        ("GET", "_unmatched", "404"),
    }
    assert value(registry, "http_request_duration_seconds_count", **_get("/static/{path}")) == 2


def _get(route: str, status: str = "200") -> dict[str, str]:
    return {"method": "GET", "route": route, "status_code": status}


# -- WSGI paths ---------------------------------------------------------------------------------


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.mark.parametrize(
    ("raw", "route"),
    [
        ("/café/42".encode(), "/café/{id}"),
        ("/日本/商品/9".encode(), "/日本/商品/{id}"),
        (b"/caf\xe9/42", "/caf%E9/{id}"),  # not UTF-8: shown as sent
        (b"/plain/42", "/plain/{id}"),
    ],
)
def test_wsgi_paths_decoded_as_utf8(registry: CollectorRegistry, raw: bytes, route: str) -> None:
    app = instrument(_hello, registry=registry, normalize_paths=True)
    assert call_wsgi(app, raw.decode("latin-1"))[0] == "200 OK"
    assert routes_seen(registry) == {("GET", route, "200")}


def test_wsgi_non_ascii_exclude_path(registry: CollectorRegistry) -> None:
    app = instrument(_hello, registry=registry, normalize_paths=True, exclude_paths=["/santé"])
    call_wsgi(app, "/santé".encode().decode("latin-1"))
    assert routes_seen(registry) == set()


def test_asgi_paths_need_no_decoding(registry: CollectorRegistry) -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = instrument(bare, registry=registry, normalize_paths=True)
    assert asyncio.run(_one(app, "/caf%C3%A9/3")) == 200
    assert routes_seen(registry) == {("GET", "/café/{id}", "200")}


async def _one(app: Any, url: str) -> int:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return (await client.get(url)).status_code
