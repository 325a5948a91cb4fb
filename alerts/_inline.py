"""Inline recording rules into an alert's expression, so Prometheus evaluates it on raw data.

``job:http_requests:rate5m{job="shop"} offset 1d`` becomes the recording rule's own expression
with the matchers and the offset pushed down to every raw selector in it
(``sum by (job) (rate(http_request_duration_seconds_count{job="shop"}[5m] offset 1d))``).
Pushing a matcher below an aggregation is exact when the aggregation keeps the label, which
every HLTHZ recording rule does for the labels alerts select on (``job``, ``route``,
``method``, ``cache``). A name recorded by several rules (one per route) becomes their union
(``or``: their label sets differ). A recorded series read over a range
(``avg_over_time(x[1w])``) is left as it is: inlining it needs a subquery re-evaluated at every
step (week-long windows cost steps x window / interval evaluations), so it is read as
Prometheus recorded it; :func:`inline` reports such names.

This is a tokenizer for the PromQL HLTHZ generates, not a PromQL parser: strings, label
matchers ``{...}``, ranges ``[...]``, identifiers, and everything else passed through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<matchers>\{(?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
  | (?P<range>\[[^\]]*\])
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[a-z]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.X | re.S,
)
# Words that are never a metric name.
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    }
)
_LABEL_LISTS = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])


@dataclass
class Inlined:
    """The inlined expression and the recorded series it still reads over a range."""

    expr: str
    recorded: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(expr)]


def _next(tokens: Sequence[tuple[str, str]], i: int) -> int:
    """Index of the next non-space token after ``i`` (``len(tokens)`` when none)."""
    i += 1
    while i < len(tokens) and tokens[i][0] == "space":
        i += 1
    return i


def inline(
    expr: str,
    rules: Mapping[str, Sequence[str]],
    matchers: Sequence[str] = (),
    offset: str = "",
    *,
    keep: frozenset[str] = frozenset(),
    _depth: int = 0,
) -> Inlined:
    """``expr`` with every name of ``rules`` (record name -> its expressions) replaced by its
    expression, ``matchers`` and ``offset`` pushed onto every raw selector. Names in ``keep``
    (and names read over a range) stay as recorded and are listed in ``.recorded``."""
    if _depth > 20:
        raise ValueError("recording rules refer to each other in a loop")
    out: list[str] = []
    recorded: set[str] = set()
    tokens = _tokens(expr)
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "ident" and text in _LABEL_LISTS:
            # by (job, le): copy the label list through unchanged.
            j = _next(tokens, i)
            out.append(text)
            if j < len(tokens) and tokens[j][1] == "(":
                close = j
                while close < len(tokens) and tokens[close][1] != ")":
                    close += 1
                out.extend(t for _, t in tokens[i + 1 : close + 1])
                i = close + 1
            else:
                i += 1
            continue
        j = _next(tokens, i)
        is_call = j < len(tokens) and tokens[j][1] == "("
        if kind != "ident" or text in _KEYWORDS or is_call:
            out.append(text)
            i += 1
            continue
        # A selector: name, then optional {matchers}, [range], offset D.
        own: list[str] = []
        if j < len(tokens) and tokens[j][0] == "matchers":
            inner = tokens[j][1][1:-1].strip()
            own = [inner] if inner else []
            i, j = j, _next(tokens, j)
        window = ""
        if j < len(tokens) and tokens[j][0] == "range":
            window = tokens[j][1]
            i, j = j, _next(tokens, j)
        own_offset = ""
        if j < len(tokens) and tokens[j][1] == "offset":
            k = _next(tokens, j)
            own_offset = tokens[k][1]
            i, j = k, _next(tokens, k)
        if own_offset and offset:
            raise ValueError(f"{text}: an offset inside an offset recording rule")
        all_matchers = [*own, *matchers]
        shift = own_offset or offset
        if text in rules and not window and text not in keep:
            parts = []
            for body in rules[text]:
                sub = inline(body, rules, all_matchers, shift, keep=keep, _depth=_depth + 1)
                parts.append(f"({sub.expr})")
                recorded |= sub.recorded
            out.append(parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")")
        else:
            if text in rules or text in keep:
                recorded.add(text)
            selector = text + ("{" + ", ".join(all_matchers) + "}" if all_matchers else "")
            out.append(selector + window + (f" offset {shift}" if shift else ""))
        i += 1
    return Inlined("".join(out), recorded)
