"""Which imported requests to keep: route and method filters and consistent sampling.

``hlthz replay import --route 'GET /api/products/{id}' --exclude-route '/health' --method GET
--sample 10% --sample-key cookie:sessionid`` builds one :class:`Selection`. Routes are named by
:class:`hlthz.routes.Routes` exactly as ``inspect`` and ``replay run`` name them (``--routes
FILE`` templates, else the path normaliser), so a route copied from ``inspect``'s top list
selects exactly those requests; ``*`` globs work (``'GET /api/*'``, ``'/admin/*'``).

Sampling keeps a share of *sessions*, not of requests, so a kept user's requests all stay: the
key is the ``sample_key`` value (``header:NAME`` or ``cookie:NAME``), else the record's
``session``, else its id. The decision is a hash of the key, the same the recording middleware
uses: the same sessions are kept run after run and across files. Filtering and sampling see the
records before redaction (a cookie can be a sampling key), nothing of which is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

from hlthz.errors import ReplayError
from hlthz.replay.capture.format import CaptureRecord
from hlthz.routes import Routes

__all__ = ["Selection", "SelectionStats", "sample_keeps"]

_METHOD = re.compile(r"[A-Za-z][A-Za-z_-]*")


def sample_keeps(key: str, fraction: float) -> bool:
    """The consistent sampling decision for ``key`` (shared with the recording middleware)."""
    if fraction >= 1.0:
        return True
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


@dataclass
class SelectionStats:
    """Records read, and those left out by route or method (``filtered``) or sampling."""

    seen: int = 0
    filtered: int = 0
    sampled_out: int = 0


def _rule(text: str, option: str) -> tuple[str | None, re.Pattern[str]]:
    method, space, route = text.strip().partition(" ")
    if not space:
        method, route = "", method
    if method and not _METHOD.fullmatch(method):
        raise ReplayError(f"{option} {text!r}: use 'METHOD /route' or '/route' ('*' globs)")
    if not route.startswith("/") and route != "*":
        raise ReplayError(f"{option} {text!r}: the route must start with '/'")
    return (method.upper() or None), re.compile(fnmatch.translate(route))


@dataclass
class Selection:
    """Route/method filters and consistent sampling for an import (module docstring)."""

    routes: tuple[str, ...] = ()
    exclude_routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    sample: float = 1.0
    sample_key: str | None = None
    naming: Routes = field(default_factory=Routes)
    stats: SelectionStats = field(default_factory=SelectionStats)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise ReplayError(f"--sample {self.sample!r}: must be between 0 and 1")
        self._include = [_rule(r, "--route") for r in self.routes]
        self._exclude = [_rule(r, "--exclude-route") for r in self.exclude_routes]
        self._methods = frozenset(m.strip().upper() for m in self.methods if m.strip())
        self._key_kind = self._key_name = ""
        if self.sample_key:
            kind, sep, name = self.sample_key.partition(":")
            if not sep or kind not in ("header", "cookie") or not name:
                raise ReplayError(
                    f"--sample-key {self.sample_key!r}: use 'header:NAME' or 'cookie:NAME'"
                )
            self._key_kind, self._key_name = kind, name

    @property
    def active(self) -> bool:
        """Does this selection leave anything out?"""
        return bool(self._include or self._exclude or self._methods or self.sample < 1.0)

    def _matches(
        self, rules: list[tuple[str | None, re.Pattern[str]]], method: str, route: str
    ) -> bool:
        return any((m is None or m == method) and p.match(route) for m, p in rules)

    def key_value(self, record: CaptureRecord) -> str | None:
        """The ``sample_key`` value of ``record`` (a header or a cookie), if it has one."""
        if self._key_kind == "header":
            return record.header(self._key_name)
        if self._key_kind == "cookie":
            for name, value in record.headers:
                if name.strip().lower() != "cookie":
                    continue
                try:
                    morsel = SimpleCookie(value).get(self._key_name)
                except CookieError:
                    continue
                if morsel is not None:
                    return morsel.value
        return None

    def keep(self, record: CaptureRecord) -> bool:
        """Is ``record`` selected? Counts what is left out in :attr:`stats`."""
        self.stats.seen += 1
        method = record.method.upper()
        if self._methods and method not in self._methods:
            self.stats.filtered += 1
            return False
        if self._include or self._exclude:
            route = self.naming.template(record.path)
            if (self._include and not self._matches(self._include, method, route)) or (
                self._exclude and self._matches(self._exclude, method, route)
            ):
                self.stats.filtered += 1
                return False
        if self.sample < 1.0:
            key = self.key_value(record) or record.session or record.id
            if not sample_keeps(key, self.sample):
                self.stats.sampled_out += 1
                return False
        return True
