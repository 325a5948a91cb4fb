"""Rewriting rules for captured requests: path, query and headers, as GoReplay users know them.

``hlthz replay import ... --rewrite-path '^/v1/(.*)' '/v2/$1' --set-query api_key test
--drop-query utm_source --rewrite-header Host '(.*)\\.example\\.com' '$1.staging.internal'``
builds one :class:`Rewrite`; ``hlthz replay run`` takes the same options and applies them to
each record just before it is sent, so a capture recorded against ``/v1`` can be replayed
against a build that serves ``/v2``, and a fresh token can replace the redacted one.

Rules apply in a fixed order, each to the result of the one before: path rewrites (the path
without its query, every rule in the order given), then query edits (drops, then sets), then
header rewrites, removals and sets. A replacement may use ``$1``/``${name}`` (GoReplay) or
``\\1``/``\\g<name>`` (Python) for the regex groups. Query parameters keep their order and
their raw encoding; a set parameter replaces every parameter of that name (first place kept)
or is appended.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from hlthz.errors import UsageError
from hlthz.replay.capture.format import CaptureRecord

__all__ = ["Rewrite", "RewriteStats"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DOLLAR = re.compile(r"\$(?:(\d+)|\{(\w+)\}|(\$))")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: A pattern longer than this is a mistake, not a rule (and would be echoed in errors).
_MAX_PATTERN = 1000


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _pattern(option: str, text: str) -> re.Pattern[str]:
    if len(text) > _MAX_PATTERN:
        raise UsageError(f"{option}: the pattern is longer than {_MAX_PATTERN} characters")
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(
            f"{option} {_shown(text)}: not a valid regular expression ({exc})"
        ) from None


def _replacement(option: str, pattern: re.Pattern[str], text: str) -> str:
    """``text`` with GoReplay's ``$1``/``${name}`` turned into Python's ``\\g<...>``."""

    def python(match: re.Match[str]) -> str:
        number, name, dollar = match.groups()
        return "$" if dollar else f"\\g<{number or name}>"

    converted = _DOLLAR.sub(python, text)
    try:
        pattern.sub(converted, "")  # parses the template: bad group references raise
    except (re.error, IndexError) as exc:  # IndexError: an unknown group name
        raise UsageError(f"{option} {_shown(text)}: {exc}") from None
    return converted


def _header_name(option: str, name: str) -> str:
    name = name.strip()
    if not _TOKEN.fullmatch(name):
        raise UsageError(f"{option} {_shown(name)}: not a header name")
    return name


def _value(option: str, value: str) -> str:
    if _BAD_VALUE.search(value):
        raise UsageError(f"{option}: the value holds a control character (CR, LF or NUL)")
    return value


@dataclass
class RewriteStats:
    """Requests the rules changed (``rewritten``) out of those seen."""

    seen: int = 0
    rewritten: int = 0


@dataclass
class Rewrite:
    """Path, query and header rules (module docstring). Built from option values as given:

    ``paths``: ``(regex, replacement)``; ``set_query``: ``(name, value)``; ``drop_query``:
    names; ``header_rules``: ``(name, regex, replacement)``; ``set_headers``: ``(name, value)``
    (an empty value removes the header); ``drop_headers``: names. Bad rules raise
    :class:`UsageError` naming the option.
    """

    paths: Sequence[tuple[str, str]] = ()
    set_query: Sequence[tuple[str, str]] = ()
    drop_query: Sequence[str] = ()
    header_rules: Sequence[tuple[str, str, str]] = ()
    set_headers: Sequence[tuple[str, str]] = ()
    drop_headers: Sequence[str] = ()
    stats: RewriteStats = field(default_factory=RewriteStats)

    def __post_init__(self) -> None:
        self._paths = []
        for regex, repl in self.paths:
            pattern = _pattern("--rewrite-path", regex)
            replacement = _replacement("--rewrite-path", pattern, repl)
            self._paths.append((pattern, _value("--rewrite-path", replacement)))
        for name, value in self.set_query:
            if not name or _BAD_VALUE.search(name) or any(c in name for c in "&=#?; "):
                raise UsageError(f"--set-query {_shown(name)}: not a query parameter name")
            _value("--set-query", value)
        self._drop_query = frozenset(self.drop_query)
        self._header_rules = []
        for name, regex, repl in self.header_rules:
            pattern = _pattern("--rewrite-header", regex)
            self._header_rules.append(
                (
                    _header_name("--rewrite-header", name).lower(),
                    pattern,
                    _replacement("--rewrite-header", pattern, repl),
                )
            )
        self._set_headers = [
            (_header_name("--set-header", name), _value("--set-header", value.strip()))
            for name, value in self.set_headers
        ]
        self._drop_headers = frozenset(
            _header_name("--drop-header", name).lower() for name in self.drop_headers
        )

    @property
    def active(self) -> bool:
        """Does any rule exist?"""
        return bool(
            self._paths
            or self.set_query
            or self._drop_query
            or self._header_rules
            or self._set_headers
            or self._drop_headers
        )

    # -- applying -----------------------------------------------------------------------------

    def _path(self, target: str) -> str:
        path, mark, query = target.partition("?")
        for pattern, replacement in self._paths:
            path = pattern.sub(replacement, path)
        if self._drop_query or self.set_query:
            query = self._query(query)
            mark = "?" if query else ""
        # A rewritten path must still be one origin-form request target.
        if not path.startswith("/") or _BAD_VALUE.search(path) or " " in path:
            raise UsageError(
                f"--rewrite-path turned a path into {_shown(path)}: a request path must start "
                "with '/' and hold no spaces or control characters"
            )
        return path + mark + query

    def _query(self, query: str) -> str:
        # ';' separates parameters too (as the redactor reads them); keep each separator.
        parts = re.split(r"([&;])", query) if query else []
        kept: list[str] = []
        done: set[str] = set()
        values = dict(self.set_query)
        for index in range(0, len(parts), 2):
            item = parts[index]
            name = item.partition("=")[0]
            if name in self._drop_query or (name in done and name in values):
                continue
            if name in values:
                item = f"{name}={values[name]}"
                done.add(name)
            kept.append(item)
        kept.extend(f"{name}={value}" for name, value in self.set_query if name not in done)
        return "&".join(item for item in kept if item)

    def _headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        replaced = {name.lower() for name, _ in self._set_headers}
        out: list[tuple[str, str]] = []
        for name, value in headers:
            key = name.strip().lower()
            if key in self._drop_headers or key in replaced:
                continue
            for rule_name, pattern, replacement in self._header_rules:
                if rule_name == key:
                    value = pattern.sub(replacement, value)
            if _BAD_VALUE.search(value):
                raise UsageError(
                    f"--rewrite-header {name}: the rewritten value holds a control character"
                )
            out.append((name, value))
        out.extend((name, value) for name, value in self._set_headers if value)
        return out

    def apply(self, record: CaptureRecord) -> CaptureRecord:
        """``record`` with every rule applied (the same record when nothing changes)."""
        self.stats.seen += 1
        if not self.active:
            return record
        path = self._path(record.path)
        headers = self._headers(record.headers)
        if path == record.path and headers == record.headers:
            return record
        self.stats.rewritten += 1
        return replace(record, path=path, headers=headers)

    def records(self, records: Iterable[CaptureRecord]) -> Iterator[CaptureRecord]:
        """Each of ``records`` rewritten, lazily."""
        for record in records:
            yield self.apply(record)
