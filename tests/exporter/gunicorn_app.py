"""The WSGI app the multiprocess test serves with gunicorn (``tests.exporter.gunicorn_app:app``)."""

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.exporter import instrument


def _hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


app = instrument(_hello, registry=CollectorRegistry(), normalize_paths=True)
