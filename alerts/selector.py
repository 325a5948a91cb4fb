"""The ``selector`` setting: extra PromQL label matchers added to every rule.

Parsing it (rather than pasting the text into expressions) catches typos at load time, gives
``absent()`` the labels it will carry, and lets the promtool test generator pick label values
that the selector matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hlthz.errors import SelectorError
from hlthz.inputs import excerpt

_MATCHER_RE = re.compile(
    r"""\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)"""
)


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``name op "value"``."""

    name: str
    op: str
    value: str

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def matches(self, candidate: str) -> bool:
        """Whether a label value ``candidate`` satisfies this matcher (PromQL semantics)."""
        value = self.value.replace('\\"', '"').replace("\\\\", "\\")
        if self.op == "=":
            return candidate == value
        if self.op == "!=":
            return candidate != value
        # PromQL regexes are fully anchored.
        found = re.fullmatch(value, candidate) is not None
        return found if self.op == "=~" else not found


def parse_selector(text: str) -> list[Matcher]:
    """Parse ``job=~"shop|api", env="prod"`` into matchers; :class:`SelectorError` if malformed."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    matchers: list[Matcher] = []
    pos = 0
    while pos < len(text):
        match = _MATCHER_RE.match(text, pos)
        if match is None:
            raise SelectorError(f"cannot parse matchers at {excerpt(text[pos:])}")
        name, op, value, _ = match.groups()
        if name == "__name__":
            raise SelectorError("__name__ cannot be used: the rules choose the metric names")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise SelectorError(
                    f"{name}{op}{excerpt(value)}: bad regular expression: {exc.msg}"
                ) from None
        matchers.append(Matcher(name, op, value))
        pos = match.end()
    return matchers


def absent_labels(matchers: list[Matcher]) -> dict[str, str]:
    """Labels ``absent(up{selector})`` carries: those of the equality matchers, as in PromQL."""
    return {m.name: m.value for m in matchers if m.op == "="}


def sample_labels(matchers: list[Matcher], defaults: dict[str, str]) -> dict[str, str]:
    """Label values for synthetic test series that the selector matches.

    ``defaults`` (such as ``{"job": "api"}``) are kept when the selector accepts them. A label
    the selector constrains gets the first candidate (the default, the literal alternatives of a
    regex, or a made-up value) that every matcher on it accepts; :class:`SelectorError` if none.
    """
    labels = dict(defaults)
    for name in dict.fromkeys(m.name for m in matchers):
        on_name = [m for m in matchers if m.name == name]
        candidates = [defaults.get(name, "api")]
        for m in on_name:
            if m.op == "=":
                candidates.insert(0, m.value)
            elif m.op == "=~":
                candidates.extend(re.sub(r"[()^$]", "", alt) for alt in m.value.split("|"))
        candidates += [f"{candidates[0]}-test", "hlthz-test"]
        chosen = next((c for c in candidates if c and all(m.matches(c) for m in on_name)), None)
        if chosen is None:
            raise SelectorError(
                f"cannot invent a value of label {name} that the selector matches; "
                "simplify its regular expression"
            )
        labels[name] = chosen
    return labels
