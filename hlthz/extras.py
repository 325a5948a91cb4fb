"""Optional extras: which modules each ``pip install 'hlthz[EXTRA]'`` brings, and the one check.

A base install (``pip install hlthz``) has what ``from hlthz.exporter import instrument`` and the
core CLI (``hlthz --help``, ``hlthz alerts generate|check``) need. Everything else sits in an
extra, and code that needs one calls :func:`require` before importing it:

- a command, first thing in its function: ``require("replay", what="hlthz replay run")``;
- a package whose import needs an extra, at its top:
  ``require("dashboards", what="hlthz.dashboards")``.

Either way a missing module is one :class:`hlthz.errors.MissingExtra` naming the extra to
install: one line and exit 2 in the CLI, a :class:`ModuleNotFoundError` for ``except
ImportError``. Only third-party modules are checked, and without importing them (so looking
for locust does not let it patch the socket module).
"""

from __future__ import annotations

import importlib.util
import sys

from hlthz.errors import MissingExtra

__all__ = ["INCLUDES", "MODULES", "MissingExtra", "extra_of", "missing", "modules_of", "require"]

#: extra -> the top-level modules of its own distributions that HLTHZ imports. Keep it in step
#: with ``[project.optional-dependencies]`` in pyproject.toml (tests/test_packaging.py checks).
MODULES: dict[str, tuple[str, ...]] = {
    "replay": (
        "locust",
        "gevent",
        "geventhttpclient",
        "hdrh",
        "httpx",
        "rich",
        "uvicorn",
        "markupsafe",
    ),
    "dashboards": ("grafanalib", "attr"),
    "demo": (
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "gunicorn",
        "sqlalchemy",
        "cachetools",
        "httpx",
    ),
    "postgres": ("psycopg",),
    "redis": ("redis", "rq"),
}

#: extras that pull in other extras (``hlthz[demo]`` depends on ``hlthz[replay,dashboards]``).
INCLUDES: dict[str, tuple[str, ...]] = {
    "demo": ("replay", "dashboards"),
    "all": ("replay", "dashboards", "demo", "postgres", "redis"),
}


def modules_of(extra: str) -> tuple[str, ...]:
    """Every module ``extra`` brings: its own, then those of the extras it includes."""
    if extra not in MODULES and extra not in INCLUDES:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(sorted(MODULES))}")
    found = list(MODULES.get(extra, ()))
    for included in INCLUDES.get(extra, ()):
        found += modules_of(included)
    return tuple(dict.fromkeys(found))


def missing(*modules: str) -> list[str]:
    """The ones of ``modules`` (top-level names) that are not installed."""
    return [name for name in modules if not _installed(name)]


def require(extra: str, *modules: str, what: str) -> None:
    """Raise :class:`MissingExtra` unless ``modules`` are installed (default: all the extra's).

    ``what`` names what needs them, a command (``hlthz replay run``) or a package
    (``hlthz.dashboards``); the message names the first missing module.
    """
    wanted = modules or modules_of(extra)
    absent = missing(*wanted)
    if absent:
        raise MissingExtra(what, extra, absent[0])


def extra_of(module: str) -> str | None:
    """The extra that brings top-level ``module`` (the first one listing it), if any."""
    top = module.partition(".")[0]
    return next((extra for extra, names in MODULES.items() if top in names), None)


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: an import of it was blocked
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
