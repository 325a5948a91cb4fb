"""Alertmanager's inhibition, replayed on the backtest's episodes.

The generated Alertmanager configuration mutes an alert while another fires (a critical alert
silences the matching warning, ``routing.py``), and a project may add rules of its own. A muted
episode never reaches anyone, so the backtest's notifications per week count it apart.

An episode is *inhibited* when, for one rule, it matches the target matchers and episodes that
match the source matchers, with the same values of the rule's ``equal`` labels, fire over all of
its time. One muted for only part of its time still notifies: Alertmanager sends it as soon as
it is not muted at a notification. As in Alertmanager, a missing label matches as the empty
string, and an episode that matches both sides of a rule is not muted by another that does too
(so an alert cannot silence itself). ``group_wait`` is not modelled: a source that starts a few
seconds after its target leaves the target counted as notifying, though Alertmanager may not
have sent it yet.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hlthz.alerts.selector import Matcher, parse_selector
from hlthz.errors import SelectorError

if TYPE_CHECKING:
    from hlthz.alerts.backtest import AlertBacktest, AlertEpisode

__all__ = ["InhibitRule", "inhibit", "inhibit_rules"]

_MATCHER = re.compile(
    r"\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$"
)


@dataclass(frozen=True)
class InhibitRule:
    """One ``inhibit_rules`` entry: its source and target matchers and ``equal`` labels."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The values of the ``equal`` labels (a missing label is the empty string)."""
        return tuple(labels.get(name, "") for name in self.equal)


def _matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quoted(text: str) -> str:
    # Alertmanager accepts unquoted values (severity=critical); the selector parser wants quotes.
    match = _MATCHER.match(text)
    if match is None or match["value"].startswith('"'):
        return text
    return match["name"] + match["op"] + _quote(match["value"])


def _side(rule: Mapping[str, Any], side: str) -> tuple[Matcher, ...]:
    matchers: list[Matcher] = []
    texts = rule.get(f"{side}_matchers") or []
    if not isinstance(texts, list):
        raise SelectorError(f"{side}_matchers is not a list")
    for text in texts:
        matchers += parse_selector(_quoted(str(text)))
    # The older forms: a map of equalities, a map of regular expressions.
    for op, key in (("=", f"{side}_match"), ("=~", f"{side}_match_re")):
        pairs = rule.get(key) or {}
        if not isinstance(pairs, Mapping):
            raise SelectorError(f"{key} is not a mapping")
        for name, value in pairs.items():
            matchers += parse_selector(f"{name}{op}{_quote(str(value))}")
    return tuple(matchers)


def inhibit_rules(alertmanager: Mapping[str, Any]) -> tuple[list[InhibitRule], list[str]]:
    """The ``inhibit_rules`` of a generated Alertmanager document, and a note for each rule
    the backtest cannot model (its matchers do not parse)."""
    rules: list[InhibitRule] = []
    notes: list[str] = []
    for i, rule in enumerate(alertmanager.get("inhibit_rules") or []):
        try:
            if not isinstance(rule, Mapping):
                raise SelectorError("not a mapping")
            equal = rule.get("equal") or []
            if not isinstance(equal, list):
                raise SelectorError("equal is not a list of label names")
            source, target = _side(rule, "source"), _side(rule, "target")
        except SelectorError as exc:
            notes.append(f"inhibit_rules[{i}] is not modelled by the backtest: {exc}")
            continue
        rules.append(InhibitRule(source, target, tuple(str(n) for n in equal)))
    return rules, notes


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> bool:
    reached = start
    for first, last in sorted(spans):
        if first > reached:
            return False
        reached = max(reached, last)
        if reached >= end:
            return True
    return reached >= end


def inhibit(alerts: list[AlertBacktest], rules: list[InhibitRule], range_end: float) -> None:
    """Mark every episode of ``alerts`` that ``rules`` mute for all of its time (one rule for
    a while and another after it count together, as Alertmanager mutes while any rule does)."""
    everything: list[AlertEpisode] = [e for a in alerts for e in a.episodes]
    muting: dict[int, list[tuple[float, float]]] = {}
    for rule in rules:
        sources: dict[tuple[str, ...], list[AlertEpisode]] = {}
        for e in everything:
            if _matches(rule.source, e.labels):
                sources.setdefault(rule.key(e.labels), []).append(e)
        for i, e in enumerate(everything):
            if not _matches(rule.target, e.labels):
                continue
            both = _matches(rule.source, e.labels)
            muting.setdefault(i, []).extend(
                (s.start, s.until(range_end))
                for s in sources.get(rule.key(e.labels), [])
                if s is not e and not (both and _matches(rule.target, s.labels))
            )
    muted = {
        i
        for i, spans in muting.items()
        if spans and _covered(spans, everything[i].start, everything[i].until(range_end))
    }
    index = 0
    for a in alerts:
        marked = []
        for e in a.episodes:
            marked.append(dataclasses.replace(e, inhibited=index in muted))
            index += 1
        a.episodes = marked
