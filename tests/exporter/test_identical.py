"""Responses are byte-identical with and without instrument() (property-based)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hlthz.exporter import instrument

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=40
)
responses = st.fixed_dictionaries(
    {
        "status": st.integers(min_value=200, max_value=599),
        "headers": st.lists(st.tuples(_token.map(lambda t: "X-" + t), _header_value), max_size=6),
        "chunks": st.lists(st.binary(max_size=300), max_size=6),
        "streaming": st.booleans(),
        "path": st.sampled_from(["/", "/a/1", "/metricsx", "/users/42/x", "/%C3%A9"]),
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "BREW"]),
    }
)


def _wsgi_app(spec: dict[str, Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(f"{spec['status']} Whatever", list(spec["headers"]))
        if spec["streaming"]:

            def gen() -> Iterator[bytes]:
                yield from spec["chunks"]

            return gen()
        return list(spec["chunks"])

    return app


def _run_wsgi(app: Any, spec: dict[str, Any]) -> tuple[Any, ...]:
    environ = {
        "REQUEST_METHOD": spec["method"],
        "PATH_INFO": spec["path"],
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    started: list[Any] = []
    result = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        chunks = list(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return tuple(started), tuple(chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=responses)
def test_wsgi_responses_identical(spec: dict[str, Any]) -> None:
    bare = _wsgi_app(spec)
    wrapped = instrument(_wsgi_app(spec), registry=CollectorRegistry(), normalize_paths=True)
    assert _run_wsgi(wrapped, spec) == _run_wsgi(bare, spec)


def _asgi_app(spec: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in spec["headers"]]
        await send({"type": "http.response.start", "status": spec["status"], "headers": headers})
        chunks = spec["chunks"]
        if spec["streaming"] and chunks:
            for i, chunk in enumerate(chunks):
                more = i < len(chunks) - 1
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
        else:
            await send({"type": "http.response.body", "body": b"".join(chunks)})

    return app


def _run_asgi(app: Any, spec: dict[str, Any]) -> list[Any]:
    sent: list[Any] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": spec["method"],
        "path": spec["path"],
        "raw_path": spec["path"].encode(),
        "query_string": b"",
        "headers": [],
    }

    received: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not received:
            received.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        # Later calls wait for a disconnect that never comes (Starlette listens for one while
        # it streams, and cancels the wait when the response is done).
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=responses)
def test_asgi_responses_identical(spec: dict[str, Any]) -> None:
    bare = _asgi_app(spec)
    wrapped = instrument(_asgi_app(spec), registry=CollectorRegistry(), normalize_paths=True)
    assert _run_asgi(wrapped, spec) == _run_asgi(bare, spec)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=responses)
def test_flask_responses_identical(spec: dict[str, Any]) -> None:
    import flask

    def build() -> Any:
        app = flask.Flask("identical")

        @app.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        @app.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        def any_path(rest: str) -> Any:
            chunks = spec["chunks"]
            body: Any = (lambda: iter(chunks))() if spec["streaming"] else b"".join(chunks)
            return flask.Response(body, status=spec["status"], headers=spec["headers"])

        return app

    assert _run_wsgi(instrument(build(), registry=CollectorRegistry()), spec) == _run_wsgi(
        build(), spec
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=responses)
def test_starlette_responses_identical(spec: dict[str, Any]) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        chunks = spec["chunks"]
        headers = dict(spec["headers"])
        if spec["streaming"]:

            async def body() -> Any:
                for chunk in chunks:
                    yield chunk

            return StreamingResponse(body(), status_code=spec["status"], headers=headers)
        return Response(b"".join(chunks), status_code=spec["status"], headers=headers)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "BREW"]

    def build() -> Any:
        return Starlette(routes=[Route("/{rest:path}", endpoint, methods=methods)])

    assert _run_asgi(instrument(build(), registry=CollectorRegistry()), spec) == _run_asgi(
        build(), spec
    )
