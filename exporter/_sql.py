"""Bounded names for SQL statements: ``query_type`` (verb + main table) and the N+1 shape.

Both are cached by statement text: ORMs and drivers repeat identical strings with bound
parameters, so the regular expressions run once per distinct statement.
"""

from __future__ import annotations

import re
import threading

_CACHE_SIZE = 4096
_MAX_NAME = 64

_TAG = re.compile(r"/\*\s*hlthz:\s*([A-Za-z0-9_.:-]+)\s*\*/|--\s*hlthz:\s*([A-Za-z0-9_.:-]+)")
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_NUMBERS = re.compile(r"(?<![\w$])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_IN_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_VALUES_ROWS = re.compile(r"(\(\s*\?[^()]*\))(?:\s*,\s*\(\s*\?[^()]*\))+")
_SPACES = re.compile(r"\s+")
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")
_IDENT = r"((?:[`\"\[]?[\w$]+[`\"\]]?\.)*[`\"\[]?[\w$]+[`\"\]]?|\()"
_TABLE_AFTER = {
    "select": re.compile(r"\bfrom\s+" + _IDENT, re.I),
    "with": re.compile(r"\bfrom\s+" + _IDENT, re.I),
    "insert": re.compile(r"\binto\s+" + _IDENT, re.I),
    "replace": re.compile(r"\binto\s+" + _IDENT, re.I),
    "update": re.compile(r"^\s*update\s+(?:or\s+\w+\s+)?(?:only\s+)?" + _IDENT, re.I),
    "delete": re.compile(r"\bfrom\s+" + _IDENT, re.I),
}
_OTHER_VERBS = frozenset(
    {
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "create",
        "drop",
        "alter",
        "truncate",
        "pragma",
        "set",
        "show",
        "explain",
        "analyze",
        "vacuum",
        "copy",
        "lock",
        "grant",
        "call",
    }
)
_UNSAFE = re.compile(r"[^a-z0-9_]")

_cache: dict[str, tuple[str, str]] = {}
_lock = threading.Lock()


def analyze(statement: str) -> tuple[str, str]:
    """``(query_type, shape)`` of a statement: ``("select_products", "SELECT ... WHERE id = ?")``.

    ``query_type`` is a ``/* hlthz:name */`` (or ``-- hlthz:name``) tag when the statement has
    one, else the verb and the main table; ``shape`` is the statement with literals and
    comments removed and ``IN (...)`` lists collapsed, so executions that differ only by their
    values compare equal.
    """
    hit = _cache.get(statement)
    if hit is not None:
        return hit
    result = (_query_type(statement), _shape(statement))
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()  # statements built with inline literals: start over, stay bounded
        _cache[statement] = result
    return result


def tag_of(statement: str) -> str | None:
    """The ``hlthz:name`` tag in a statement's comments, if any."""
    match = _TAG.search(statement)
    if match is None:
        return None
    return (match.group(1) or match.group(2))[:_MAX_NAME]


def _query_type(statement: str) -> str:
    tagged = tag_of(statement)
    if tagged is not None:
        return tagged
    text = _COMMENTS.sub(" ", statement)
    first = _FIRST_WORD.match(text)
    if first is None:
        return "other"
    verb = first.group(1).lower()
    pattern = _TABLE_AFTER.get(verb)
    if pattern is None:
        return verb if verb in _OTHER_VERBS else "other"
    if verb == "with":
        # The main statement follows the CTEs; its verb is the last top-level one we can see.
        verb = _main_verb_of_with(text)
    match = pattern.search(text)
    if match is None:
        return verb
    table = match.group(1)
    if table == "(":
        return f"{verb}_subquery"
    table = table.rsplit(".", 1)[-1].strip('`"[]').lower()
    table = _UNSAFE.sub("_", table)
    return f"{verb}_{table}"[:_MAX_NAME]


def _main_verb_of_with(text: str) -> str:
    depth = 0
    last = "select"
    for match in re.finditer(r"[()]|\b(select|insert|update|delete)\b", text, re.I):
        token = match.group(0)
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            last = token.lower()
    return last


def _shape(statement: str) -> str:
    text = _COMMENTS.sub(" ", statement)
    text = _STRINGS.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _IN_LISTS.sub("(?)", text)
    text = _VALUES_ROWS.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()[:500]
