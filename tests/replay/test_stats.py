"""The gate's statistics on synthetic samples: known shifts are found, identical distributions
are not, corrections and the verdicts of compare behave as docs/gate.md says."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from typing import Any

import pytest

from hlthz.replay import Report, compare_reports
from hlthz.replay.compare import GateOptions
from hlthz.replay.stats import (
    bh_adjust,
    block_length,
    chi2_sf,
    paired_quantile_errors,
    percentile_change,
    quantile,
    quantile_errors,
    share_change,
    status_shift,
)


def _lognormal(n: int, median_ms: float, seed: int, sigma: float = 0.3) -> list[float]:
    rng = random.Random(seed)
    return [median_ms * rng.lognormvariate(0, sigma) for _ in range(n)]


def test_quantile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.95) == 95.0
    assert quantile(values, 0.5) == 50.0
    assert quantile([7.0], 0.99) == 7.0
    assert quantile([], 0.5) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_a_30_percent_slowdown_of_400_requests_is_significant(seed: int) -> None:
    base = _lognormal(400, 20, seed)
    cand = [v * 1.3 for v in _lognormal(400, 20, seed + 100)]
    p50, p95 = percentile_change(base, cand, (0.5, 0.95), seed=seed)
    assert p50.p < 1e-6 and p95.p < 0.01
    assert p95.lower(0.05) > 0  # the whole interval is a slowdown


@pytest.mark.parametrize("seed", range(5))
def test_identical_distributions_are_not_significant(seed: int) -> None:
    base = _lognormal(400, 20, seed)
    cand = _lognormal(400, 20, seed + 100)
    for estimate in percentile_change(base, cand, (0.5, 0.95), seed=seed):
        # one-sided at 0.001: not a discovery (the seeds are fixed, so this is deterministic)
        assert estimate.p > 0.001
        assert estimate.lower(0.001) < 0


def test_bootstrap_is_seeded_and_block_bootstrap_widens_for_bursts() -> None:
    base = _lognormal(300, 10, 1)
    cand = _lognormal(300, 10, 2)
    assert percentile_change(base, cand, (0.95,), seed=3) == percentile_change(
        base, cand, (0.95,), seed=3
    )
    from hlthz.replay.stats import bootstrap_quantiles

    # 30 slow requests in one burst: blocks keep the burst together, so the P95's spread grows.
    bursty = [10.0] * 270 + [100.0] * 30
    iid = bootstrap_quantiles(bursty, (0.95,), resamples=300, rng=random.Random(0))[0]
    blocks = bootstrap_quantiles(bursty, (0.95,), resamples=300, rng=random.Random(0), block=17)
    spread = [statistics.pstdev(x) for x in (iid, blocks[0])]
    assert spread[1] > spread[0]


def _busy_periods(n: int, seed: int) -> list[float]:
    """A factor per position: 3 in every fifth run of 40 positions (a busy neighbour that both
    sides of an interleaved replay live through), else 1; ``seed`` shifts the pattern."""
    return [3.0 if (i // 40 + seed) % 5 == 0 else 1.0 for i in range(n)]


def _side_by_side(n: int, seed: int, slow: float = 1.0) -> tuple[list[float], list[float]]:
    busy = _busy_periods(n, seed)
    base = [f * v for f, v in zip(busy, _lognormal(n, 20, seed + 1), strict=True)]
    cand = [f * v * slow for f, v in zip(busy, _lognormal(n, 20, seed + 2), strict=True)]
    return base, cand


def _independent_error(base: list[float], cand: list[float], q: float, seed: int) -> float:
    rng = random.Random(seed)
    block = block_length(len(base))
    errors = [
        quantile_errors(s, (q,), resamples=300, rng=rng, block=block)[1][0] for s in (base, cand)
    ]
    return math.hypot(*errors)


@pytest.mark.parametrize("seed", range(3))
def test_paired_errors_cancel_noise_both_sides_shared(seed: int) -> None:
    base, cand = _side_by_side(800, seed)
    block = block_length(800)
    (paired,) = paired_quantile_errors(
        base, cand, (0.95,), resamples=300, rng=random.Random(seed), block=block
    )
    assert paired < 0.7 * _independent_error(base, cand, 0.95, seed)


@pytest.mark.parametrize("seed", range(3))
def test_paired_errors_of_unrelated_samples_are_the_independent_ones(seed: int) -> None:
    base, cand = _lognormal(800, 20, seed), _lognormal(800, 20, seed + 50)
    (paired,) = paired_quantile_errors(
        base, cand, (0.95,), resamples=300, rng=random.Random(seed), block=block_length(800)
    )
    assert paired == pytest.approx(_independent_error(base, cand, 0.95, seed), rel=0.25)
    with pytest.raises(ValueError, match="differ in length: 800 and 799"):
        paired_quantile_errors(base, cand[1:], (0.95,), resamples=20, rng=random.Random(0))


def test_share_change_and_status_shift() -> None:
    assert share_change(10, 1000, 60, 1000).p < 1e-6
    assert share_change(10, 1000, 12, 1000).p > 0.1
    distance, p = status_shift({"200": 500}, {"401": 500})
    assert distance == 1.0 and p < 1e-50
    distance, p = status_shift({"200": 450, "404": 50}, {"200": 445, "404": 55})
    assert distance == pytest.approx(0.01) and p > 0.3


def test_chi_square_survival_matches_known_values() -> None:
    assert chi2_sf(3.841, 1) == pytest.approx(0.05, abs=1e-3)
    assert chi2_sf(11.345, 3) == pytest.approx(0.01, abs=1e-3)
    assert chi2_sf(0, 4) == 1.0


def test_corrections() -> None:
    ps = [0.01, 0.04, 0.03, 0.5]
    assert bh_adjust(ps) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert all(a >= p for a, p in zip(bh_adjust(ps), ps, strict=True))


# -- verdicts of compare on synthetic reports ---------------------------------------------------


def _report(
    routes: dict[str, list[float]],
    statuses: dict[str, dict[str, int]] | None = None,
    *,
    digest: str | None = None,
) -> Report:
    def percentiles(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50": quantile(ordered, 0.5),
            "p90": quantile(ordered, 0.9),
            "p95": quantile(ordered, 0.95),
            "p99": quantile(ordered, 0.99),
            "max": ordered[-1],
        }

    everything = [v for values in routes.values() for v in values]
    statuses = statuses or {key: {"200": len(v)} for key, v in routes.items()}

    def samples(values: list[float]) -> dict[str, Any]:
        out = {"seen": len(values), "latency_ms": values, "service_time_ms": values}
        return out if digest is None else {**out, "digest": digest}

    total_status: dict[str, int] = {}
    for mix in statuses.values():
        for code, n in mix.items():
            total_status[code] = total_status.get(code, 0) + n
    data = {
        "hlthz_report": 1,
        "summary": {
            "requests": len(everything),
            "errors": 0,
            "error_rate": 0.0,
            "skipped": 0,
            "duration_s": 10.0,
            "rps": len(everything) / 10,
            "latency_ms": percentiles(everything),
            "service_time_ms": percentiles(everything),
            "schedule_lag_ms": {"p50": 0.1, "p99": 1.0, "max": 2.0},
            "statuses": total_status,
            "samples": samples(everything),
        },
        "routes": [
            {
                "route": key,
                "requests": len(values),
                "errors": 0,
                "latency_ms": percentiles(values),
                "statuses": statuses[key],
                "samples": samples(values),
            }
            for key, values in routes.items()
        ],
    }
    return Report.from_dict(data)


def _routes(seed: int, slow: float = 1.0, small_slow: float = 1.0) -> dict[str, list[float]]:
    return {
        "GET /busy": [v * slow for v in _lognormal(600, 25, seed)],
        "GET /small": [v * small_slow for v in _lognormal(200, 1, seed + 1, sigma=0.5)],
    }


def test_compare_fails_a_real_slowdown_and_passes_the_same_distribution() -> None:
    base = _report(_routes(1))
    same = compare_reports(base, _report(_routes(2)))
    assert same.judged and not same.failed
    slow = compare_reports(base, _report(_routes(2, slow=1.4)))
    assert {c.scope for c in slow.failures} >= {"GET /busy", "overall"}
    fail = next(c for c in slow.failures if c.scope == "GET /busy" and c.gate.startswith("p95"))
    assert fail.p_adjusted is not None and fail.p_adjusted < 0.05
    assert fail.low is not None and fail.low > 0.1  # the interval is beyond the +10 % limit


def test_jitter_on_a_small_fast_route_is_not_a_regression() -> None:
    # +50 % on a 1 ms route is under 2 ms even at its P95: under the floor (--min-effect 2 ms).
    base = _report(_routes(1))
    cand = _report(_routes(2, small_slow=1.5))
    result = compare_reports(base, cand)
    assert not [c for c in result.failures if c.scope == "GET /small"]
    strict = compare_reports(base, cand, GateOptions(min_effect=0.0, min_samples=10))
    small = [c for c in strict.checks if c.scope == "GET /small" and c.gate.startswith("p95")]
    assert small[0].status in ("fail", "inconclusive")


def test_a_tail_percentile_of_a_few_requests_is_not_judged() -> None:
    few = {"GET /x": _lognormal(40, 5, 1)}
    result = compare_reports(_report(few), _report({"GET /x": _lognormal(40, 9, 2)}))
    p99 = next(c for c in result.checks if c.scope == "GET /x" and c.gate.startswith("p99"))
    assert p99.status == "insufficient"
    assert (
        p99.note == "P99 of 40 requests rests on fewer than 5 requests above it: needs 500 a side"
    )


def test_inconclusive_says_the_smallest_detectable_change() -> None:
    noisy = {"GET /x": _lognormal(30, 10, 0, sigma=1.0)}
    noisier = {"GET /x": [v * 1.2 for v in _lognormal(30, 10, 50, sigma=1.0)]}
    result = compare_reports(_report(noisy), _report(noisier), fail_on=["p50 > +10%"])
    check = next(c for c in result.checks if c.scope == "GET /x")
    assert check.status == "inconclusive"
    assert check.detectable is not None and check.detectable > 0.1
    assert "with 30 requests a side, only a change of" in check.note


def test_a_status_check_that_cannot_reject_does_not_dilute_the_correction() -> None:
    # Every request answered 200 on both sides: the status test has one possible outcome, so
    # it stays out of Benjamini-Hochberg and the latency checks are corrected among themselves.
    routes, slower = _routes(1), _routes(2, slow=1.15)
    result = compare_reports(_report(routes), _report(slower))
    status = [c for c in result.checks if c.gate.startswith("status_change")]
    assert status and all(c.status == "pass" and c.p_adjusted == 1.0 for c in status)
    family = [c for c in result.checks if c.p is not None and c not in status]
    assert [c.p_adjusted for c in family] == pytest.approx(bh_adjust([c.p for c in family]))
    # One 503 on a side makes a status change possible: the status checks count again.
    mixed = {key: {"200": len(v) - 1, "503": 1} for key, v in slower.items()}
    result = compare_reports(_report(routes), _report(slower, mixed))
    family = [c for c in result.checks if c.p is not None]
    assert any(c.gate.startswith("status_change") for c in family)
    assert [c.p_adjusted for c in family] == pytest.approx(bh_adjust([c.p for c in family]))


def test_all_401_fails_the_default_status_gate() -> None:
    routes = _routes(1)
    good = {key: {"200": len(v)} for key, v in routes.items()}
    denied = {key: {"401": len(v)} for key, v in routes.items()}
    result = compare_reports(_report(routes, good), _report(_routes(2), denied))
    failed = {(c.scope, c.gate) for c in result.failures}
    assert ("overall", "status_change > 5%") in failed
    assert (
        math.isclose(next(c.candidate for c in result.failures if c.scope == "overall") or 0, 1.0)
        or result.failed
    )


def _p95(comparison: Any, scope: str) -> Any:
    return next(c for c in comparison.checks if c.scope == scope and c.gate.startswith("p95"))


def test_an_interleaved_report_is_judged_paired() -> None:
    # +30 % on a route whose two sides lived through the same busy periods. Judged as two
    # separate runs, the busy periods count twice; judged as the one interleaved replay they
    # are, they cancel, and the slowdown stands out.
    caught = {"apart": 0, "together": 0}
    for seed in range(4, 8):
        base_values, cand_values = _side_by_side(800, seed, slow=1.3)
        base = _report({"GET /busy": base_values})
        cand = _report({"GET /busy": cand_values})
        apart = _p95(compare_reports(base, cand), "GET /busy")
        together = _p95(compare_reports(base, replace(cand, baseline=base)), "GET /busy")
        assert (apart.method, together.method) == ("bootstrap", "paired bootstrap")
        assert together.p_adjusted < apart.p_adjusted
        caught["apart"] += apart.status == "fail"
        caught["together"] += together.status == "fail"
    assert caught["together"] >= 3 and caught["apart"] <= 1, caught


def test_paired_errors_are_calibrated_on_identical_builds() -> None:
    # Identical builds side by side, 40 times: each P50/P95 difference over its paired standard
    # error is about a standard normal. Too wide a spread means errors too small (a gate that
    # cries wolf); too narrow, errors too large (a gate that misses regressions).
    z: dict[float, list[float]] = {0.5: [], 0.95: []}
    for seed in range(40):
        base, cand = _side_by_side(800, 100 + seed)
        errors = paired_quantile_errors(
            base, cand, (0.5, 0.95), resamples=200, rng=random.Random(seed), block=28
        )
        for q, se in zip(z, errors, strict=True):
            z[q].append((quantile(sorted(cand), q) - quantile(sorted(base), q)) / se)
    for values in z.values():
        assert abs(statistics.mean(values)) < 0.5
        assert 0.7 < statistics.stdev(values) < 1.3


def test_unequal_sides_are_not_paired() -> None:
    base_values, cand_values = _side_by_side(800, 4)
    base = _report({"GET /busy": base_values})
    cand = _report({"GET /busy": cand_values[:-5]})  # 5 requests fewer: positions do not pair
    result = compare_reports(base, replace(cand, baseline=base))
    assert _p95(result, "GET /busy").method == "bootstrap"


def test_samples_of_other_requests_are_not_paired() -> None:
    # As many requests on both sides, but the samples name different ones (a side that lost a
    # request to its warm-up and kept another): value i is not one request on both sides.
    base_values, cand_values = _side_by_side(800, 4)
    base = _report({"GET /busy": base_values}, digest="0123456789abcdef")
    for digest, method in (("0123456789abcdef", "paired bootstrap"), ("fedcba98", "bootstrap")):
        cand = replace(_report({"GET /busy": cand_values}, digest=digest), baseline=base)
        assert _p95(compare_reports(base, cand), "GET /busy").method == method


def test_a_request_s_own_cost_cancels_when_the_sides_pair_request_by_request() -> None:
    # A route whose requests differ in cost (a search with 3 results or 3,000): each captured
    # request costs about the same on both builds. Paired request by request, that spread
    # cancels and +10 % is plain; drawn as two separate samples, it hides it.
    for seed in range(3):
        rng = random.Random(seed)
        costs = [rng.lognormvariate(math.log(20), 0.8) for _ in range(600)]
        base_values = [c * rng.lognormvariate(0, 0.05) for c in costs]
        cand_values = [c * 1.1 * rng.lognormvariate(0, 0.05) for c in costs]
        base = _report({"GET /search": base_values}, digest="aaaaaaaaaaaaaaaa")
        cand = _report({"GET /search": cand_values}, digest="aaaaaaaaaaaaaaaa")
        options = GateOptions(fail_on=("p95 > +5%",))
        apart = _p95(compare_reports(base, cand, options), "GET /search")
        together = _p95(compare_reports(base, replace(cand, baseline=base), options), "GET /search")
        assert together.method == "paired bootstrap"
        assert together.status == "fail" and apart.status != "fail", (together, apart)
