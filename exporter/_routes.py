"""Route templates: per framework, and the opt-in path normalizer for bare callables.

``route`` must be the template a framework matched (``/api/products/{product_id}``), never the
raw path, or every id becomes a series. Frameworks know their template once they have routed:

- Flask: ``request.url_rule.rule``, read after the response from the request context HLTHZ
  keeps (or by a first ``before_request`` hook on Flask versions without ``request_context``).
- Django: ``request.resolver_match.route``, read after the handler's ``get_response``.
- Starlette and FastAPI: the router stores the matched route object in ``scope["route"]``;
  :class:`StarletteRoutes` maps it to its full template, mount prefixes included.

Bare WSGI/ASGI callables have no templates: their requests share ``_unmatched`` unless the
application opts in to path normalization (``normalize_paths=``: :func:`hlthz.routes.normalize_path`
or a :class:`hlthz.routes.Routes` built from its route templates).
"""

from __future__ import annotations

from typing import Any

from hlthz.exporter._metrics import UNMATCHED_ROUTE


def flask_rule(rule: Any) -> str:
    """The template of a Flask/Werkzeug ``url_rule`` (``None``: unmatched)."""
    return UNMATCHED_ROUTE if rule is None else str(rule.rule)


def django_route(resolver_match: Any) -> str:
    """The template of a Django ``ResolverMatch`` (``None``: unmatched), with a leading slash."""
    if resolver_match is None:
        return UNMATCHED_ROUTE
    route = getattr(resolver_match, "route", None)
    if not route:
        return UNMATCHED_ROUTE
    route = str(route)
    return route if route.startswith("/") else "/" + route


class StarletteRoutes:
    """Maps the route objects a Starlette/FastAPI router puts in ``scope["route"]`` to templates.

    A route inside a ``Mount`` only knows its own path; the full template needs every mount
    above it, so the index walks the application's route tree (once, and again when an unknown
    route shows up: routes added after ``instrument()`` are found too).
    """

    _MAX_ENTRIES = 10_000  # bounds the index if an app creates route objects per request

    def __init__(self, app: Any) -> None:
        self._app = app
        self._index: dict[int, tuple[Any, str]] = {}

    def template(self, route: Any) -> str:
        """Full template of ``route`` (``None`` or an unknown object: ``_unmatched``)."""
        if route is None:
            return UNMATCHED_ROUTE
        entry = self._index.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
        return self._miss(route)

    def _miss(self, route: Any) -> str:
        self._rebuild()
        entry = self._index.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
        # Not in the tree (a route handed over by a custom router): its own path is the best
        # template there is.
        template = _own_template(route, "")
        if len(self._index) < self._MAX_ENTRIES:
            self._index[id(route)] = (route, template)
        return template

    def _rebuild(self) -> None:
        index: dict[int, tuple[Any, str]] = {}
        _walk(getattr(self._app, "routes", None) or [], "", index, depth=0)
        self._index = index


def _walk(routes: Any, prefix: str, index: dict[int, tuple[Any, str]], depth: int) -> None:
    if depth > 16:  # a mount cycle would recurse forever
        return
    for route in list(routes):
        index[id(route)] = (route, _own_template(route, prefix))
        children = getattr(route, "routes", None)
        if children:
            _walk(children, prefix + str(getattr(route, "path", "") or ""), index, depth + 1)


def _own_template(route: Any, prefix: str) -> str:
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    if getattr(route, "routes", None):
        # A mount whose routes matched nothing: the sub-application answered "not found".
        return UNMATCHED_ROUTE
    if type(route).__name__ == "Mount":
        # A mounted application without routes (static files, a bare ASGI app).
        return prefix + path + "/{path}"
    return prefix + path or "/"
