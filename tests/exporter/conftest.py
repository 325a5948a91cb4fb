"""Fixtures and helpers for the exporter tests: a fresh registry per test, sample readers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of the test's own: metrics never leak between tests."""
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when the series does not exist."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def label_sets(registry: CollectorRegistry, sample_name: str) -> list[dict[str, str]]:
    """Label sets of every sample called ``sample_name`` (e.g. ``..._count``)."""
    return [
        dict(sample.labels)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == sample_name
    ]


def call_wsgi(
    app: Callable[..., Iterable[bytes]],
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app in-process as a server does (iterate, then close) and return the response."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.split("?", 1)[0],
        "QUERY_STRING": path.split("?", 1)[1] if "?" in path else "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(b""),
        "wsgi.errors": __import__("sys").stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, val in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = val
    started: list[Any] = []

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        started[:] = [status, response_headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started[0], started[1], body


@pytest.fixture(scope="session")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Django set up once per process: two SQLite databases (aliases ``default`` and
    ``other``) with ``tests.exporter.django_app``'s tables, 3 authors and 6 books in each."""
    from django.conf import settings

    directory = tmp_path_factory.mktemp("django")
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["127.0.0.1"],
            ROOT_URLCONF="tests.exporter.django_urls",
            MIDDLEWARE=[],
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "rest_framework",
                "tests.exporter.django_app",
            ],
            DATABASES={
                alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(directory / alias)}
                for alias in ("default", "other")
            },
            REST_FRAMEWORK={"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]},
            SECRET_KEY="test-only",
            LOGGING_CONFIG=None,
            USE_TZ=True,
        )
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    from tests.exporter.django_app.models import Author, Book

    for alias in ("default", "other"):
        call_command("migrate", run_syncdb=True, database=alias, verbosity=0)
        if not Author.objects.using(alias).exists():
            authors = [Author.objects.using(alias).create(name=f"author {i}") for i in range(3)]
            for i in range(6):
                Book.objects.using(alias).create(title=f"book {i}", author=authors[i % 3])
    # Later connections are opened by the code under test, as in a server.
    connections.close_all()
    yield


@pytest.fixture
def django_handler(django_db: None) -> Iterator[object]:
    """A Django WSGI handler over ``tests.exporter.django_urls``."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF="tests.exporter.django_urls"):
        yield WSGIHandler()
