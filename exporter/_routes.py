"""Route templates: per framework, and the opt-in path normalizer for bare callables.

``route`` must be the template a framework matched (``/api/products/{product_id}``), never the
raw path, or every id becomes a series. Frameworks know their template once they have routed:

- Flask: ``request.url_rule.rule``, read after the response from the request context HLTHZ
  keeps (or by a first ``before_request`` hook on Flask versions without ``request_context``).
- Django: ``request.resolver_match.route``, read after the handler's ``get_response``.
  ``path()`` routes are kept as written (``/api/items/<int:item_id>``); ``re_path()`` routes
  (DRF's routers among them) are turned into readable templates (``/api/items/{pk}/``).
- Starlette and FastAPI: the router stores the matched route object in ``scope["route"]``
  (FastAPI only for its ``APIRoute``s) and the matched endpoint in ``scope["endpoint"]`` (every
  route and mount); :class:`StarletteRoutes` maps either to its full template, mount prefixes
  included, so ``/docs``, ``add_route()`` routes and mounted ``StaticFiles`` are named too.

Bare WSGI/ASGI callables have no templates: their requests share ``_unmatched`` unless the
application opts in to path normalization (``normalize_paths=``: :func:`hlthz.routes.normalize_path`
or a :class:`hlthz.routes.Routes` built from its route templates).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from hlthz.exporter._metrics import UNMATCHED_ROUTE


def flask_rule(rule: Any) -> str:
    """The template of a Flask/Werkzeug ``url_rule`` (``None``: unmatched)."""
    return UNMATCHED_ROUTE if rule is None else str(rule.rule)


def django_route(resolver_match: Any) -> str:
    """The template of a Django ``ResolverMatch`` (``None``: unmatched), with a leading slash.

    ``resolver_match.route`` is the text of the matched patterns joined: a ``path()`` route as
    written, a ``re_path()`` one as its regex. Regex routes become templates with ``{name}``
    for each group (``api/items/(?P<pk>[^/.]+)/$`` -> ``/api/items/{pk}/``); an optional group
    gives one template with and one without it, and the request's captured arguments choose.
    """
    if resolver_match is None:
        return UNMATCHED_ROUTE
    route = getattr(resolver_match, "route", None)
    if not route:
        return UNMATCHED_ROUTE
    known = _django_templates.get(route)
    if known is None:
        known = _django_template(str(route))
        with _django_lock:
            if len(_django_templates) >= _MAX_DJANGO_ROUTES:
                _django_templates.clear()  # routes are few; this only bounds a pathological app
            _django_templates[route] = known
    if isinstance(known, str):
        return known
    return _pick_variant(known, resolver_match)


_MAX_DJANGO_ROUTES = 10_000
#: Regex metacharacters a ``path()`` route does not contain (its converters are ``<...>``).
_REGEX_CHARS = re.compile(r"[\\^$()\[\]*+?|]")
_NORMALIZED_PARAM = re.compile(r"%\((\w+)\)s")
#: route -> template, or (parameter names, template) per variant when a group is optional.
_django_templates: dict[str, str | tuple[tuple[frozenset[str], str], ...]] = {}
_django_lock = threading.Lock()


def _django_template(route: str) -> str | tuple[tuple[frozenset[str], str], ...]:
    if not _REGEX_CHARS.search(route):
        return _slashed(route)
    try:
        # Django's own reading of a URL regex, the one reverse() builds URLs from: groups
        # become parameters, optional parts give variants, quantifiers and escapes resolve.
        from django.utils.regex_helper import normalize

        variants = normalize(route)
    except Exception:
        variants = []
    found = [
        (frozenset(params), _slashed(_NORMALIZED_PARAM.sub(_param, text)))
        for text, params in variants
    ]
    if not found or (len(found) == 1 and not found[0][1].strip("/") and route.strip("^$/")):
        # normalize() gives up on alternation outside a group: show the regex, anchors removed.
        return _slashed(route.replace("^", "").replace("$", ""))
    if len(found) == 1:
        return found[0][1]
    return tuple(found)


def _param(match: re.Match[str]) -> str:
    name = match.group(1)
    # Unnamed groups are _0, _1, ... in normalize()'s output.
    return "{arg" + name[1:] + "}" if name[:1] == "_" and name[1:].isdigit() else "{" + name + "}"


def _slashed(template: str) -> str:
    return template if template.startswith("/") else "/" + template


def _pick_variant(variants: tuple[tuple[frozenset[str], str], ...], resolver_match: Any) -> str:
    captured = getattr(resolver_match, "captured_kwargs", None)
    if captured is None:  # Django < 4.1: kwargs also hold the route's extra arguments
        captured = getattr(resolver_match, "kwargs", None) or {}
    names = set(captured)
    names.update(f"_{i}" for i in range(len(getattr(resolver_match, "args", ()) or ())))
    best = variants[0][1]
    best_size = -1
    for params, template in variants:
        if params == names:
            return template
        if params <= names and len(params) > best_size:
            best, best_size = template, len(params)
    return best


class StarletteRoutes:
    """Maps what a Starlette/FastAPI router leaves in the scope to the full route template.

    ``scope["route"]`` is the matched route object (Starlette sets it for every route, FastAPI
    only for its ``APIRoute``s); ``scope["endpoint"]`` is the matched route's endpoint, or the
    application of a matched mount (``StaticFiles``). A route inside a ``Mount`` only knows its
    own path; the full template needs every mount above it, so the index walks the
    application's route tree (once, and again when an unknown object shows up: routes added
    after ``instrument()`` are found too).
    """

    _MAX_ENTRIES = 10_000  # bounds the index if an app creates route objects per request

    def __init__(self, app: Any) -> None:
        self._app = app
        self._index: dict[int, tuple[Any, str]] = {}
        #: id(endpoint) -> (endpoint, its templates): one endpoint may serve several routes.
        self._endpoints: dict[int, tuple[Any, tuple[str, ...]]] = {}
        self._choosers: dict[tuple[str, ...], Any] = {}

    def route_of(self, scope: Any) -> str:
        """The template of the request in ``scope`` once the app has routed it."""
        route = scope.get("route")
        if route is not None:
            template = self.template(route)
            if template != UNMATCHED_ROUTE:
                return template
            # A mount whose application routed without setting scope["route"] (a FastAPI
            # sub-application's /docs): its endpoint names the route.
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        entry = self._endpoints.get(id(endpoint))
        if entry is None or entry[0] is not endpoint:
            entry = self._endpoint_miss(endpoint)
        templates = entry[1]
        if len(templates) == 1:
            return templates[0]
        if not templates:
            return UNMATCHED_ROUTE
        return self._choose(templates, scope.get("path", ""))

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

    def _endpoint_miss(self, endpoint: Any) -> tuple[Any, tuple[str, ...]]:
        self._rebuild()
        entry = self._endpoints.get(id(endpoint))
        if entry is not None and entry[0] is endpoint:
            return entry
        # A mounted application with routes of its own that matched none of them, or an
        # endpoint outside the tree: nothing to name it by.
        entry = (endpoint, ())
        if len(self._endpoints) < self._MAX_ENTRIES:
            self._endpoints[id(endpoint)] = entry
        return entry

    def _choose(self, templates: tuple[str, ...], path: str) -> str:
        """The one of ``templates`` (all served by one endpoint) that ``path`` matches."""
        chooser = self._choosers.get(templates)
        if chooser is None:
            from hlthz.routes import Routes

            # A mount's trailing {path} spans segments; Routes spells that {path:path}.
            patterns = {
                (t[: -len("{path}")] + "{path:path}" if t.endswith("/{path}") else t): t
                for t in templates
            }
            chooser = self._choosers[templates] = (Routes(patterns), patterns)
        routes, patterns = chooser
        return str(patterns.get(routes.template(path), templates[0]))

    def _rebuild(self) -> None:
        index: dict[int, tuple[Any, str]] = {}
        endpoints: dict[int, tuple[Any, tuple[str, ...]]] = {}
        _walk(getattr(self._app, "routes", None) or [], "", index, endpoints, depth=0)
        self._index = index
        self._endpoints = endpoints
        self._choosers = {}


def _walk(
    routes: Any,
    prefix: str,
    index: dict[int, tuple[Any, str]],
    endpoints: dict[int, tuple[Any, tuple[str, ...]]],
    depth: int,
) -> None:
    if depth > 16:  # a mount cycle would recurse forever
        return
    for route in list(routes):
        template = _own_template(route, prefix)
        index[id(route)] = (route, template)
        children = getattr(route, "routes", None)
        if children:
            sub_prefix = prefix + str(getattr(route, "path", "") or "")
            _walk(children, sub_prefix, index, endpoints, depth + 1)
            continue
        # Route and WebSocketRoute put .endpoint in the scope; Mount and Host their .app.
        endpoint = getattr(route, "endpoint", None)
        if endpoint is None:
            endpoint = getattr(route, "app", None)
        if endpoint is None or template == UNMATCHED_ROUTE:
            continue
        known = endpoints.get(id(endpoint))
        if known is None:
            endpoints[id(endpoint)] = (endpoint, (template,))
        elif template not in known[1]:
            endpoints[id(endpoint)] = (endpoint, (*known[1], template))


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
