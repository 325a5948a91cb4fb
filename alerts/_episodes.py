"""From "the expression returned this label set at these evaluations" to firing episodes.

The rule manager's state machine for one alert and one label set (Prometheus'
``rules/alerting.go``, re-stated): at each evaluation ``t`` where the expression returns the
label set, an inactive alert becomes *pending* with ``active_at = t``; a pending alert whose
``t - active_at >= for`` becomes *firing* (the episode starts at ``t``). At an evaluation where
the label set is missing, a pending alert is dropped; a firing one resolves (the episode ends at
``t``) unless ``keep_firing_for`` holds it: it keeps firing while ``t - missing_since <
keep_firing_for`` and ``missing_since`` is cleared when the label set comes back. A resolved
alert that comes back starts pending again, so it waits out ``for`` once more.

Times are integer milliseconds, like Prometheus' own, so ``for`` comparisons are exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Episode:
    """One firing episode: ``start`` (the evaluation that fired) to ``end`` (the evaluation
    that resolved), in ms; ``end`` is None when it still fired at the end of the range."""

    start: int
    end: int | None

    def until(self, range_end: int) -> int:
        """The end, or ``range_end`` for an episode still firing then."""
        return self.end if self.end is not None else range_end


def runs(times: Iterable[int], interval: int) -> list[tuple[int, int]]:
    """Maximal runs of consecutive evaluations ``[(first, last), ...]`` (``interval`` apart)."""
    out: list[tuple[int, int]] = []
    for t in sorted(set(times)):
        if out and t - out[-1][1] <= interval:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _first_at_or_after(start: int, delay: int, interval: int) -> int:
    """The first evaluation ``start + k * interval`` with ``k * interval >= delay``."""
    steps = -(-delay // interval) if delay > 0 else 0
    return start + steps * interval


def episodes(
    times: Iterable[int],
    *,
    interval: int,
    for_: int = 0,
    keep_firing_for: int = 0,
    range_end: int | None = None,
) -> list[Episode]:
    """The episodes of one label set present at ``times`` (ms, on an ``interval`` grid).

    ``range_end`` is the last evaluation of the range: an alert resolving after it is still
    firing (``end=None``); without it the last run is assumed to end with the data.
    """
    out: list[Episode] = []
    firing_since: int | None = None
    resolve_at = 0
    for first, last in runs(times, interval):
        if firing_since is not None and first <= resolve_at:
            # Came back while keep_firing_for still held it: the same episode goes on.
            resolve_at = _first_at_or_after(last + interval, keep_firing_for, interval)
            continue
        if firing_since is not None:
            out.append(Episode(firing_since, resolve_at))
            firing_since = None
        fire = _first_at_or_after(first, for_, interval)
        if fire <= last:
            firing_since = fire
            resolve_at = _first_at_or_after(last + interval, keep_firing_for, interval)
    if firing_since is not None:
        open_ended = range_end is not None and resolve_at > range_end
        out.append(Episode(firing_since, None if open_ended else resolve_at))
    return out


def flaps(found: Sequence[Episode], window: int) -> int:
    """Episodes that fired again within ``window`` ms of the previous one's end."""
    ordered = sorted(found, key=lambda e: e.start)
    return sum(
        1
        for before, after in itertools.pairwise(ordered)
        if before.end is not None and after.start - before.end <= window
    )
