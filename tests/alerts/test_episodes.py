"""The backtest's pure layers: ``for``/``keep_firing_for`` episodes, the recording-rule
inliner and incident scoring (no Prometheus; the backfilled and drill tests run them for real).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from hlthz.alerts import load_config
from hlthz.alerts._episodes import Episode, episodes, flaps
from hlthz.alerts._inline import inline
from hlthz.alerts.incidents import Incident, parse_time, score

S = 15_000  # ms between evaluations


def _simulate(
    present: list[bool], for_: int, keep: int, interval: int = S
) -> list[tuple[int, int | None]]:
    """The rule manager, one evaluation at a time (the reference the fast path must equal)."""
    state, active_at, missing_since, fired_at = "inactive", 0, None, 0
    out: list[tuple[int, int | None]] = []
    for i, here in enumerate(present):
        t = i * interval
        if here:
            missing_since = None
            if state == "inactive":
                state, active_at = "pending", t
            if state == "pending" and t - active_at >= for_:
                state, fired_at = "firing", t
            continue
        if state == "pending":
            state = "inactive"
        elif state == "firing":
            if missing_since is None:
                missing_since = t
            if keep > 0 and t - missing_since < keep:
                continue
            out.append((fired_at, t))
            state, missing_since = "inactive", None
    if state == "firing":
        out.append((fired_at, None))
    return out


def _fast(present: list[bool], for_: int, keep: int) -> list[tuple[int, int | None]]:
    times = [i * S for i, here in enumerate(present) if here]
    found = episodes(
        times, interval=S, for_=for_, keep_firing_for=keep, range_end=(len(present) - 1) * S
    )
    return [(e.start, e.end) for e in found]


def test_for_waits_then_fires_and_resolves_at_the_first_missing_evaluation() -> None:
    present = [False, True, True, True, True, False, False]
    assert _fast(present, for_=2 * S, keep=0) == [(3 * S, 5 * S)]
    assert _fast(present, for_=0, keep=0) == [(1 * S, 5 * S)]
    # `for` a little over two intervals: the first evaluation at least that late, the fourth.
    assert _fast(present, for_=2 * S + 1, keep=0) == [(4 * S, 5 * S)]
    assert _fast(present, for_=4 * S, keep=0) == []  # never pending long enough


def test_keep_firing_for_bridges_a_gap_and_a_resolved_alert_waits_out_for_again() -> None:
    present = [True, True, False, True, True, False, False, False, True, True, True]
    assert _fast(present, for_=S, keep=0) == [(S, 2 * S), (4 * S, 5 * S), (9 * S, None)]
    assert _fast(present, for_=S, keep=2 * S) == [(S, 7 * S), (9 * S, None)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=60),
    st.integers(0, 6),
    st.integers(0, 4),
)
def test_episodes_equal_the_rule_manager_step_by_step(
    present: list[bool], for_steps: int, keep_steps: int
) -> None:
    for_, keep = for_steps * S, keep_steps * S
    assert _fast(present, for_, keep) == _simulate(present, for_, keep)


@st.composite
def _loose_and_strict(draw: st.DrawFn) -> tuple[list[bool], list[bool], int, int, int, int]:
    """A looser rule's condition and a stricter rule's (true whenever the looser one is, as a
    lower threshold on the same series is), with a shorter ``for`` and a longer
    ``keep_firing_for`` for the stricter one."""
    loose = draw(st.lists(st.booleans(), min_size=1, max_size=80))
    extra = draw(st.lists(st.booleans(), min_size=len(loose), max_size=len(loose)))
    strict = [a or b for a, b in zip(loose, extra, strict=True)]
    loose_for = draw(st.integers(0, 6))
    strict_for = draw(st.integers(0, loose_for))
    loose_keep = draw(st.integers(0, 3))
    strict_keep = draw(st.integers(loose_keep, 4))
    return loose, strict, loose_for * S, strict_for * S, loose_keep * S, strict_keep * S


def _firing_time(found: list[Episode], range_end: int) -> int:
    # Total ms firing, episodes still firing counted until range_end (what the backtest's
    # firing_seconds sums over its episodes).
    return sum(e.until(range_end) - e.start for e in found)


@settings(max_examples=300, deadline=None)
@given(_loose_and_strict())
def test_a_stricter_what_if_fires_whenever_the_looser_one_does(
    case: tuple[list[bool], list[bool], int, int, int, int],
) -> None:
    loose, strict, loose_for, strict_for, loose_keep, strict_keep = case
    end = (len(loose) - 1) * S
    found_loose = [Episode(*e) for e in _fast(loose, loose_for, loose_keep)]
    found_strict = [Episode(*e) for e in _fast(strict, strict_for, strict_keep)]
    # Every looser episode lies inside a stricter one: the stricter file never misses what
    # the looser one catches, nor fires later, nor resolves earlier.
    for e in found_loose:
        assert any(
            s.start <= e.start and s.until(end + S) >= e.until(end + S) for s in found_strict
        ), (e, found_strict)
    assert _firing_time(found_strict, end) >= _firing_time(found_loose, end)
    # Counted per stricter episode, each holds at least one looser one or is extra: the
    # stricter file has at least as many episodes as the looser one has *separate* ones
    # (looser episodes sharing a stricter one merged, see the next test).
    holders = {
        next(
            i
            for i, s in enumerate(found_strict)
            if s.start <= e.start and s.until(end + S) >= e.until(end + S)
        )
        for e in found_loose
    }
    assert len(found_strict) >= len(holders)


def test_the_episode_count_alone_is_not_monotonic_merging_is_why() -> None:
    # A looser rule firing twice; the stricter one (true a little more often) bridges the gap
    # and fires once, for longer. Comparing counts would call the stricter file quieter.
    loose = [True, True, True, False, True, True, True, False]
    strict = [True] * 7 + [False]
    assert len(_fast(loose, 0, 0)) == 2 and len(_fast(strict, 0, 0)) == 1


def test_flaps_count_refiring_within_the_window() -> None:
    found = [Episode(0, 60_000), Episode(120_000, 180_000), Episode(2_000_000, None)]
    assert flaps(found, 60_000) == 1
    assert flaps(found, 10_000_000) == 2
    assert flaps(found, 0) == 0


def test_inline_pushes_matchers_and_offset_down_to_raw_selectors() -> None:
    rules = {
        "job:req:rate5m": ['sum by (job) (rate(req_total{route!="/healthz"}[5m]))'],
        "job:err:ratio": ["job:err:rate5m / job:req:rate5m"],
        "job:err:rate5m": ['sum by (job) (rate(req_total{code=~"5.."}[5m]))'],
        "job_route:p95": [
            'histogram_quantile(0.95, sum by (job, route, le) (rate(b{route="/a"}[5m])))',
            'histogram_quantile(0.95, sum by (job, route, le) (rate(b{route="/b"}[5m])))',
        ],
        "job:req:avg1w": ["avg_over_time(job:req:rate5m[1w])"],
    }
    got = inline('job:err:ratio{job="shop"} offset 1d > 0.05', rules).expr
    assert got == (
        '((sum by (job) (rate(req_total{code=~"5..", job="shop"}[5m] offset 1d))) / '
        '(sum by (job) (rate(req_total{route!="/healthz", job="shop"}[5m] offset 1d)))) > 0.05'
    )
    union = inline("job_route:p95 > 1", rules).expr
    assert union.startswith("((histogram_quantile(") and ") or (histogram_quantile(" in union
    # A record read over a range stays as recorded, and is reported.
    ranged = inline("abs(job:req:rate5m - job:req:avg1w)", rules)
    assert "avg_over_time(job:req:rate5m[1w])" in ranged.expr
    assert ranged.recorded == {"job:req:rate5m"}
    kept = inline("job:req:avg1w > 1", rules, keep=frozenset({"job:req:avg1w"}))
    assert kept.expr == "job:req:avg1w > 1" and kept.recorded == {"job:req:avg1w"}


def test_inline_leaves_no_recorded_name_in_any_generated_alert() -> None:
    from hlthz.alerts.backtest import _recording_rules
    from hlthz.alerts.rules import all_alerts

    for path in (
        None,
        "tests/golden/services-routes-and-receivers/in.yaml",
        "tests/golden/slo-adds-burn-rate-alerts/in.yaml",
    ):
        config = load_config(path)
        records, keep = _recording_rules(config)
        for rule in all_alerts(config):
            got = inline(rule.expr, records, keep=keep)
            assert got.recorded <= keep, (rule.name, got.recorded)
            left = [
                name
                for name in records
                if name not in keep
                and re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", got.expr)
            ]
            assert left == [], (rule.name, left)


def test_incident_scoring_and_times() -> None:
    incidents = [
        Incident("a", 100.0, 200.0, ("X:critical",)),
        Incident("b", 1000.0, 1100.0, ("X",)),
        Incident("c", 5000.0, 5100.0),
    ]
    q = score("X", "critical", [(130.0, 260.0), (700.0, 720.0)], incidents, range_end=9000.0)
    assert (q.precision, q.recall) == (0.5, 0.5)
    assert (q.detection_delay, q.reset_time) == (30.0, 60.0)
    assert score("X", "warning", [], incidents, range_end=9000.0).expected == 1
    assert parse_time("2026-12-02T10:00:00Z", what="t") == 1796205600.0
    assert parse_time("now-1h", what="t", now=10_000.0) == 6400.0
    assert parse_time("-30m", what="t", now=10_000.0) == 8200.0
    assert parse_time(1796205600, what="t") == 1796205600.0
