"""One way to name a request's route, used everywhere a route is shown.

The exporter's fallback for bare WSGI/ASGI apps, ``hlthz replay inspect``, ``run``, ``compare``,
``diff`` and the demo all call :class:`Routes`, so the same request has the same route name in
each of them. A route is named from, in order:

1. the route templates the user gave (``Routes(["/api/products/{id}"])``, or
   :meth:`Routes.from_file` with an OpenAPI document or a text file of templates): the most
   specific matching template wins (fewer parameters, then more literal characters), so
   ``/users/me`` beats ``/users/{id}``;
2. otherwise :func:`normalize_path`, which replaces id-like segments (numbers, UUIDs, long hex
   strings, digit-heavy or very long segments) with placeholders.

Template parameters may be written as OpenAPI/FastAPI/Starlette (``{id}``, ``{rest:path}``),
Flask/Django (``<id>``, ``<int:id>``, ``<path:rest>``) or Express/Rails (``:id``) write them;
a ``path`` parameter spans several segments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hlthz.errors import ConfigError, InputError
from hlthz.net import request_target

__all__ = ["Routes", "normalize_path"]

_MAX_SEGMENTS = 12
_MAX_SEGMENT_LENGTH = 48
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_DIGIT = re.compile(r"\d")


def normalize_path(path: str) -> str:
    """Turn a raw URL path into a template with bounded cardinality.

    Numbers become ``{id}``, UUIDs ``{uuid}``, hex strings of 16+ characters ``{hash}``, and
    other segments with three or more digits or longer than 48 characters ``{param}``; the query
    string is dropped and paths deeper than 12 segments end in ``/{rest}``. Literal words are
    kept, so an application that serves arbitrary words still needs the series cap (or route
    templates: :class:`Routes`).

    >>> normalize_path("/users/42/orders/9f1c4a2e-7d3b-4c1a-9e8f-0123456789ab")
    '/users/{id}/orders/{uuid}'
    """
    path = path.split("?", 1)[0]
    segments = path.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments):
        if index > _MAX_SEGMENTS:
            out.append("{rest}")
            break
        out.append(_normalize_segment(segment) if segment else segment)
    return "/".join(out) or "/"


def _normalize_segment(segment: str) -> str:
    if _NUMBER.fullmatch(segment):
        return "{id}"
    if len(segment) >= 32 and _UUID.fullmatch(segment):
        return "{uuid}"
    if _HEX.fullmatch(segment) and _DIGIT.search(segment):
        return "{hash}"
    if len(segment) > _MAX_SEGMENT_LENGTH or len(_DIGIT.findall(segment)) >= 3:
        return "{param}"
    return segment


# {name} {name:conv} | <name> <conv:name> | :name (a whole segment)
_PARAM = re.compile(r"\{([^{}/]*)\}|<([^<>/]*)>|(?<=/):([A-Za-z_][A-Za-z0-9_]*)(?=/|$)")
_MAX_TEMPLATES = 10_000
_MAX_FILE_BYTES = 20 * 1024 * 1024
_CACHE_SIZE = 10_000


def _compile(template: str) -> tuple[re.Pattern[str], tuple[int, int]]:
    """The template's regex and its sort key (parameters, then fewer literal characters)."""
    pattern, pos, params, literal = [], 0, 0, 0
    for match in _PARAM.finditer(template):
        text = template[pos : match.start()]
        pattern.append(re.escape(text))
        literal += len(text)
        inner = match.group(1) if match.group(1) is not None else match.group(2) or ""
        # {rest:path} and <path:rest> span segments; every other converter is one segment.
        spans = inner.endswith(":path") or inner.startswith("path:")
        pattern.append(".+" if spans else "[^/]+")
        params += 2 if spans else 1
        pos = match.end()
    pattern.append(re.escape(template[pos:]))
    literal += len(template) - pos
    return re.compile("".join(pattern) + r"\Z"), (params, -literal)


class Routes:
    """Names request paths by route template (see the module docstring).

    ``template(path)`` gives the route of a path, ``name(method, path)`` the ``METHOD route``
    key reports use. An instance is also a ``path -> route`` callable, so it can be passed to
    :func:`hlthz.exporter.instrument` as ``normalize_paths=``.
    """

    def __init__(self, templates: Iterable[str] = ()) -> None:
        compiled = []
        seen: set[str] = set()
        for template in templates:
            if template in seen:
                continue
            if not template.startswith("/"):
                raise ConfigError(f"route template {template[:80]!r}: must start with '/'")
            seen.add(template)
            regex, key = _compile(template)
            compiled.append((key, template, regex))
        compiled.sort(key=lambda item: (item[0], item[1]))
        self._compiled = [(template, regex) for _, template, regex in compiled]
        self._cache: dict[str, str] = {}

    @property
    def templates(self) -> list[str]:
        """The templates, most specific first."""
        return [template for template, _ in self._compiled]

    def template(self, path: str) -> str:
        """The route of ``path`` (a path, a request target or an absolute URL)."""
        route = self._cache.get(path)
        if route is None:
            if len(self._cache) >= _CACHE_SIZE:  # bounded: traffic has endless distinct paths
                self._cache.clear()
            route = self._cache[path] = self._route(path)
        return route

    __call__ = template

    def name(self, method: str, path: str) -> str:
        """``"GET /api/products/{id}"``: the key of a route in reports."""
        return f"{method.upper()} {self.template(path)}"

    def _route(self, path: str) -> str:
        bare = request_target(path).split("?", 1)[0]
        for template, regex in self._compiled:
            if regex.match(bare):
                return template
        return normalize_path(bare)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Routes:
        """Templates from an OpenAPI document (JSON or YAML, its ``paths`` keys under the first
        server's base path) or from a text file with one template per line (``#`` comments)."""
        from hlthz.inputs import read_limited

        file = Path(path)
        data = read_limited(file, max_bytes=_MAX_FILE_BYTES, what="route file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                str(file),
                0,
                "not UTF-8 text; give an OpenAPI document or a file of route templates",
            ) from None
        lines = (line.strip() for line in text.splitlines())
        first = next((line for line in lines if line and not line.startswith("#")), "")
        templates = _from_lines(file, text) if first.startswith("/") else _from_openapi(file, text)
        if len(templates) > _MAX_TEMPLATES:
            raise InputError(str(file), 0, f"more than {_MAX_TEMPLATES:,} routes")
        return cls(templates)


def _from_lines(file: Path, text: str) -> list[str]:
    templates = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("/") or any(ch.isspace() for ch in line):
            raise InputError(
                str(file), number, f"{line[:80]!r} is not a route template like /users/{{id}}"
            )
        templates.append(line)
    return templates


def _from_openapi(file: Path, text: str) -> list[str]:
    doc = _parse_document(file, text)
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, dict) or not all(isinstance(key, str) for key in paths):
        raise InputError(
            str(file),
            0,
            "neither an OpenAPI document (no 'paths' object) nor one route template per line",
        )
    base = _base_path(doc)
    return [base + key if key.startswith("/") else f"{base}/{key}" for key in paths]


def _parse_document(file: Path, text: str) -> Any:
    # OpenAPI documents are big and deep (schemas), so the limits are wider than a config's.
    from hlthz.inputs import parse_json, parse_yaml

    if text.lstrip().startswith("{"):
        return parse_json(text, source=str(file), max_depth=256)
    return parse_yaml(
        text, source=str(file), max_depth=256, max_nodes=5_000_000, error=InputError
    ).data


def _base_path(doc: dict[str, Any]) -> str:
    """OpenAPI 3's first ``servers`` URL path, or Swagger 2's ``basePath``, without the
    trailing slash: the document's paths are relative to it."""
    servers = doc.get("servers")
    url = ""
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        url = str(servers[0].get("url") or "")
    elif "swagger" in doc and isinstance(doc.get("basePath"), str):
        url = doc["basePath"]
    if "://" in url:
        url = "/" + url.split("://", 1)[1].partition("/")[2]
    return url.rstrip("/") if url.startswith("/") else ""
