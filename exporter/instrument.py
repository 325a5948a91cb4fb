"""``instrument(app)``: detect the framework, install pure WSGI/ASGI middleware, serve /metrics.

- Flask: WSGI middleware as ``app.wsgi_app``; route from ``request.url_rule`` (a
  ``before_request`` hook installed first); returns the app.
- Starlette, FastAPI: ASGI middleware via ``add_middleware`` (or around the already built
  stack); route from ``scope["route"]`` plus mount prefixes; returns the app.
- Django WSGI/ASGI handler: middleware installed in place (the handler's ``__call__``); route
  from ``request.resolver_match.route``; every ORM query measured (``_django``); returns the
  handler.
- Any other WSGI/ASGI callable: middleware around it; route from ``normalize_paths`` (opt-in),
  else ``_unmatched``; returns the wrapper.

Frameworks are recognised by class without importing them, so an app on one framework never
pays for importing the others.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError
from hlthz.exporter._context import RequestState, current_request
from hlthz.exporter._core import DEFAULT_N_PLUS_ONE_THRESHOLD, PathNormalizer, Recorder
from hlthz.exporter._django import measure_django_queries
from hlthz.exporter._metrics import Metrics
from hlthz.exporter._routes import StarletteRoutes, django_route, flask_rule
from hlthz.exporter.asgi import ASGIMiddleware
from hlthz.exporter.exposition import Exposition, MetricsAuth
from hlthz.exporter.wsgi import WSGIMiddleware

_MARK = "_hlthz_instrumented"


def instrument(
    app: Any,
    *,
    registry: CollectorRegistry | None = None,
    metrics_path: str | None = "/metrics",
    exclude_paths: Iterable[str] = (),
    request_buckets: Sequence[float] | None = None,
    query_buckets: Sequence[float] | None = None,
    n_plus_one_threshold: int = DEFAULT_N_PLUS_ONE_THRESHOLD,
    normalize_paths: bool | PathNormalizer = False,
    max_series_per_metric: int | None = None,
    metrics_auth: MetricsAuth = None,
    measure_metrics: bool = False,
) -> Any:
    """Measure every request of ``app`` into ``registry`` and serve ``metrics_path``.

    ``app`` is a Flask, Starlette or FastAPI application or a Django WSGI/ASGI handler
    (instrumented in place and returned), or any other WSGI/ASGI callable (wrapped: use the
    returned object). ``metrics_path=None`` serves no metrics (use :func:`metrics_app`).
    Requests to ``metrics_path`` (unless ``measure_metrics``) and ``exclude_paths`` pass through
    unmeasured. ``normalize_paths`` (``True`` or a callable) names the routes of bare callables
    from their paths. ``docs/exporter.md`` describes every option.
    """
    if getattr(app, _MARK, False):
        raise ConfigError(f"{type(app).__name__} is already instrumented; call instrument() once")
    metrics = Metrics.for_registry(
        registry,
        request_buckets=request_buckets,
        query_buckets=query_buckets,
        max_series_per_metric=max_series_per_metric,
    )
    exposition = Exposition(metrics.registry, auth=metrics_auth) if metrics_path else None
    recorder = Recorder(
        metrics,
        metrics_path=metrics_path,
        exposition=exposition,
        exclude_paths=exclude_paths,
        n_plus_one_threshold=n_plus_one_threshold,
        normalize_paths=normalize_paths,
        measure_metrics=measure_metrics,
    )

    if _is_instance(app, "flask", "Flask"):
        _install_flask(app, recorder)
        result: Any = app
    elif _is_instance(app, "starlette.applications", "Starlette"):
        _install_starlette(app, recorder)
        result = app
    elif _is_instance(app, "django.core.handlers.wsgi", "WSGIHandler"):
        _hook_django(app, is_async=False)
        measure_django_queries(metrics)
        _wrap_call(app, WSGIMiddleware(functools.partial(type(app).__call__, app), recorder))
        result = app
    elif _is_instance(app, "django.core.handlers.asgi", "ASGIHandler"):
        _hook_django(app, is_async=True)
        measure_django_queries(metrics)
        _wrap_call(app, ASGIMiddleware(functools.partial(type(app).__call__, app), recorder))
        result = app
    elif not callable(app):
        raise ConfigError(
            f"instrument() needs a WSGI or ASGI application, got {type(app).__name__}"
        )
    elif _is_asgi(app):
        result = ASGIMiddleware(app, recorder)
    else:
        result = WSGIMiddleware(app, recorder)
    # Wrapped callables stay untouched (they may be instrumented again into another registry).
    _mark(result)
    return result


def _is_instance(app: Any, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(app, cls)


def _is_asgi(app: Any) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - we need the bound method itself
    return call is not None and inspect.iscoroutinefunction(call)


def _mark(app: Any) -> None:
    # A function or an object with __slots__ cannot be marked: double instrumentation of it
    # goes unnoticed.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(app, _MARK, True)


def _install_flask(app: Any, recorder: Recorder) -> None:
    original = getattr(app, "request_context", None)
    if callable(original):
        # Keep Flask's request context in the request state and read ``url_rule`` after the
        # response: cheaper than a before_request hook (no hook dispatch, no context proxy).
        def request_context(environ: dict[str, Any]) -> Any:
            context = original(environ)
            state = current_request.get()
            if state is not None:
                state.source = context
            return context

        app.request_context = request_context
        app.wsgi_app = WSGIMiddleware(app.wsgi_app, recorder, _flask_route)
        return

    import flask

    def hlthz_route() -> None:
        state = current_request.get()
        if state is not None:
            state.route = flask_rule(flask.request.url_rule)

    # First, so a hook that answers early (auth, maintenance) still has its route recorded.
    app.before_request_funcs.setdefault(None, []).insert(0, hlthz_route)
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, recorder)


def _flask_route(state: RequestState) -> str | None:
    context = state.source
    if context is None:
        return None
    return flask_rule(getattr(getattr(context, "request", None), "url_rule", None))


def _install_starlette(app: Any, recorder: Recorder) -> None:
    route_of = StarletteRoutes(app).route_of

    if getattr(app, "middleware_stack", None) is None:
        app.add_middleware(ASGIMiddleware, recorder=recorder, route_of=route_of)
    else:
        # The app has served already and Starlette refuses new middleware: wrap the built stack.
        app.middleware_stack = ASGIMiddleware(app.middleware_stack, recorder, route_of)


def _wrap_call(handler: Any, middleware: WSGIMiddleware | ASGIMiddleware) -> None:
    """Route calls of ``handler`` (a Django handler) through ``middleware``, in place.

    ``__call__`` is looked up on the type, so the instance gets a subclass of its own whose
    ``__call__`` is the middleware: the handler stays the object the server was given.
    """
    base = type(handler)
    if isinstance(middleware, ASGIMiddleware):

        async def acall(self: Any, scope: Any, receive: Any, send: Any) -> None:
            await middleware(scope, receive, send)

        call: Any = acall
    else:

        def call(self: Any, environ: Any, start_response: Any) -> Any:
            return middleware(environ, start_response)

    namespace = {"__call__": call, "__module__": base.__module__, "__doc__": base.__doc__}
    handler.__class__ = type(f"Instrumented{base.__name__}", (base,), namespace)


def _hook_django(handler: Any, *, is_async: bool) -> None:
    if is_async:
        original_async = handler.get_response_async

        async def get_response_async(request: Any) -> Any:
            response = await original_async(request)
            _set_django_route(request)
            return response

        handler.get_response_async = get_response_async
    else:
        original = handler.get_response

        def get_response(request: Any) -> Any:
            response = original(request)
            _set_django_route(request)
            return response

        handler.get_response = get_response


def _set_django_route(request: Any) -> None:
    state = current_request.get()
    if state is not None:
        state.route = django_route(getattr(request, "resolver_match", None))
