"""The release gate's statistics, in pure Python (no numpy: the replay extra does not bring it).

Three estimates, each with a standard error, a one-sided p-value and the smallest change the
samples could have detected (docs/gate.md explains them in plain words):

- :func:`percentile_change`: the change of a latency percentile (P50 ... P99) between two
  samples. Percentiles are what the gates name, and no rank test answers "did the P95 grow":
  Mann-Whitney compares whole distributions (mostly their middle). So the standard error of the
  difference comes from a **seeded bootstrap** (``resamples`` draws of each sample, all
  percentiles read off the same sorted draw, so gating P95 and P99 costs one bootstrap), and the
  p-value from the normal approximation of that difference. The bootstrap's own p-value could not
  go below ``1 / resamples``, too coarse for a correction across many routes. The two sides of
  an interleaved replay were measured side by side and are drawn together
  (:func:`paired_quantile_errors`), so noise they shared cancels.
- :func:`share_change`: the change of a share (error rate, 4xx share) between two runs, or of one
  run against an absolute limit: the normal approximation of the binomial.
- :func:`status_shift`: how far two status-code mixes are apart (total variation distance: the
  share of requests that would have to change status) and a chi-square test of homogeneity.

:func:`bh_adjust` (Benjamini-Hochberg) corrects p-values for the many routes judged at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "DEFAULT_RESAMPLES",
    "Estimate",
    "bh_adjust",
    "block_length",
    "bootstrap_quantiles",
    "chi2_sf",
    "p_worse",
    "paired_quantile_errors",
    "percentile_change",
    "quantile",
    "quantile_errors",
    "sd",
    "share_against",
    "share_change",
    "status_shift",
    "upper_p",
    "z_of",
]

#: Bootstrap draws per sample: enough for a standard error within about 5 %, and bounded.
DEFAULT_RESAMPLES = 200
#: Power the "smallest detectable change" of an inconclusive check is quoted at.
POWER = 0.8
_NORMAL = NormalDist()


def z_of(p: float) -> float:
    """The standard normal quantile of ``p`` (clamped away from 0 and 1)."""
    return _NORMAL.inv_cdf(min(max(p, 1e-15), 1 - 1e-15))


def upper_p(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 1.0 - _NORMAL.cdf(z) if z < 5 else 0.5 * math.erfc(z / math.sqrt(2))


def p_worse(x: float, se: float) -> float:
    """The one-sided p-value of "not worse" for an estimate ``x`` (larger is worse) with
    standard error ``se``; without a usable error, 0 when ``x`` is worse, else 1."""
    if se > 0 and math.isfinite(se):
        return upper_p(x / se)
    return 0.0 if x > 0 else 1.0


@dataclass(frozen=True)
class Estimate:
    """A change and its uncertainty. ``base`` and ``candidate`` are the two point values,
    ``diff`` is ``candidate - base`` in their unit, ``se`` its standard error, ``p`` the
    one-sided p-value of "the candidate is not worse" (worse = larger unless ``lower_is_worse``)."""

    base: float
    candidate: float
    diff: float
    se: float
    p: float

    def upper(self, alpha: float) -> float:
        """The one-sided upper confidence bound of ``diff`` at level ``1 - alpha``."""
        return self.diff + z_of(1 - alpha) * self.se

    def lower(self, alpha: float) -> float:
        """The one-sided lower confidence bound of ``diff``."""
        return self.diff - z_of(1 - alpha) * self.se

    def detectable(self, alpha: float, power: float = POWER) -> float:
        """The smallest change (in ``diff``'s unit) this many samples detect with ``power`` at
        level ``alpha``: (z_(1-alpha) + z_power) standard errors."""
        return (z_of(1 - alpha) + z_of(power)) * self.se


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank (as HDR histograms report)."""
    n = len(ordered)
    if n == 0:
        return 0.0
    return float(ordered[_ranks(n, (q,))[0]])


def block_length(n: int) -> int:
    """The block length of the moving-block bootstrap for ``n`` values in time order."""
    return max(1, round(math.sqrt(n)))


def _ranks(n: int, qs: Sequence[float]) -> list[int]:
    """The 0-based nearest-rank index of each quantile of ``qs`` in ``n`` sorted values."""
    return [min(n, max(1, math.ceil(q * n))) - 1 for q in qs]


def _block_starts(n: int, block: int, rng: random.Random) -> list[int]:
    """Where the runs of one moving-block redraw of ``n`` values start: enough runs of
    ``block`` (1 <= block <= n) consecutive values to cover ``n``."""
    return rng.choices(range(n - block + 1), k=math.ceil(n / block))


def _redraw(values: Sequence[float], starts: Sequence[int], block: int) -> list[float]:
    """One redraw of ``values``: the runs of ``block`` values at ``starts``, cut to the
    length of ``values`` (two samples redrawn with the same starts stay paired)."""
    if block == 1:
        return [values[i] for i in starts]
    draw: list[float] = []
    for start in starts:
        draw.extend(values[start : start + block])
    del draw[len(values) :]
    return draw


def bootstrap_quantiles(
    values: Sequence[float],
    qs: Sequence[float],
    *,
    resamples: int,
    rng: random.Random,
    block: int = 1,
) -> list[list[float]]:
    """For each of ``resamples`` draws with replacement of ``values``: its ``qs`` quantiles.
    Returns one list per quantile.

    With ``block`` > 1 it is a moving-block bootstrap: ``values`` are in time order and each draw
    strings together random runs of ``block`` consecutive values, so latencies that come in
    bursts (a busy machine, a garbage collection) widen the standard error as they should,
    instead of counting as independent evidence."""
    n = len(values)
    out: list[list[float]] = [[] for _ in qs]
    if n == 0:
        return [[0.0] * resamples for _ in qs]
    ranks = _ranks(n, qs)
    block = min(max(1, block), n)
    for _ in range(resamples):
        draw = _redraw(values, _block_starts(n, block, rng), block)
        draw.sort()
        for slot, rank in zip(out, ranks, strict=True):
            slot.append(draw[rank])
    return out


def sd(values: Sequence[float]) -> float:
    """The sample standard deviation (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def percentile_change(
    base: Sequence[float],
    candidate: Sequence[float],
    qs: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    lower_is_worse: bool = False,
) -> list[Estimate]:
    """The change of each quantile of ``qs`` from ``base`` to ``candidate`` (two samples of
    latencies), with its bootstrap standard error; seeded, so a verdict is repeatable."""
    rng = random.Random(seed)
    b_points, b_errors = quantile_errors(sorted(base), qs, resamples=resamples, rng=rng)
    c_points, c_errors = quantile_errors(sorted(candidate), qs, resamples=resamples, rng=rng)
    return [
        _estimate(b, c, math.hypot(b_se, c_se), lower_is_worse)
        for b, c, b_se, c_se in zip(b_points, c_points, b_errors, c_errors, strict=True)
    ]


def quantile_errors(
    values: Sequence[float],
    qs: Sequence[float],
    *,
    resamples: int,
    rng: random.Random,
    block: int = 1,
) -> tuple[list[float], list[float]]:
    """The ``qs`` quantiles of one sample and their bootstrap standard errors (see
    :func:`bootstrap_quantiles` for ``block``): what the gate reads of each side."""
    boot = bootstrap_quantiles(values, qs, resamples=resamples, rng=rng, block=block)
    ordered = sorted(values)
    return [quantile(ordered, q) for q in qs], [sd(column) for column in boot]


def paired_quantile_errors(
    base: Sequence[float],
    candidate: Sequence[float],
    qs: Sequence[float],
    *,
    resamples: int,
    rng: random.Random,
    block: int = 1,
) -> list[float]:
    """The bootstrap standard errors of ``candidate``'s minus ``base``'s ``qs`` quantiles for
    two samples taken side by side: value ``i`` of each was measured at about the same time
    (an interleaved replay's two sides). Each draw takes the *same* positions (runs of
    ``block``) from both, so noise the two sides shared (a busy neighbour slowing both builds
    for a second) cancels in the difference instead of counting twice, as it would when each
    side is drawn alone (:func:`quantile_errors`). Samples of different lengths are an error."""
    n = len(base)
    if len(candidate) != n:
        raise ValueError(f"paired samples differ in length: {n} and {len(candidate)}")
    if n == 0:
        return [0.0 for _ in qs]
    ranks = _ranks(n, qs)
    block = min(max(1, block), n)
    diffs: list[list[float]] = [[] for _ in qs]
    for _ in range(resamples):
        starts = _block_starts(n, block, rng)
        b = sorted(_redraw(base, starts, block))
        c = sorted(_redraw(candidate, starts, block))
        for slot, rank in zip(diffs, ranks, strict=True):
            slot.append(c[rank] - b[rank])
    return [sd(column) for column in diffs]


def _estimate(b: float, c: float, se: float, lower_is_worse: bool) -> Estimate:
    diff = c - b
    worse = -diff if lower_is_worse else diff
    return Estimate(b, c, diff, se, p_worse(worse, se))


def share_change(
    base_hits: int, base_n: int, cand_hits: int, cand_n: int, *, lower_is_worse: bool = False
) -> Estimate:
    """The change of a share (``hits / n``) between two runs: the two-proportion normal test
    (pooled standard error for the p-value, unpooled for the bounds)."""
    pb = base_hits / base_n if base_n else 0.0
    pc = cand_hits / cand_n if cand_n else 0.0
    if not base_n or not cand_n:
        return Estimate(pb, pc, pc - pb, math.inf, 1.0)
    pooled = (base_hits + cand_hits) / (base_n + cand_n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / base_n + 1 / cand_n))
    se = math.sqrt(pb * (1 - pb) / base_n + pc * (1 - pc) / cand_n)
    diff = pc - pb
    worse = -diff if lower_is_worse else diff
    p = p_worse(worse, se0)
    # A run without any hit has a zero unpooled error; the pooled one still bounds it.
    return Estimate(pb, pc, diff, max(se, se0), p)


def share_against(hits: int, n: int, limit: float) -> Estimate:
    """One run's share against an absolute ``limit``: ``diff`` = share - limit, ``p`` of
    "the share is not above the limit"."""
    share = hits / n if n else 0.0
    if not n:
        return Estimate(limit, share, share - limit, math.inf, 1.0)
    se0 = math.sqrt(max(limit * (1 - limit), 1e-12) / n)
    se = math.sqrt(max(share * (1 - share), limit * (1 - limit)) / n)
    return Estimate(limit, share, share - limit, se, upper_p((share - limit) / se0))


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (Numerical Recipes' gammq)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:  # the series of P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    # Lentz's continued fraction for Q
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_sf(stat: float, df: int) -> float:
    """P(X >= stat) for a chi-square variable X with ``df`` degrees of freedom."""
    if df <= 0:
        return 1.0
    return _gamma_q(df / 2.0, stat / 2.0)


def status_shift(base: Mapping[str, int], candidate: Mapping[str, int]) -> tuple[float, float]:
    """``(distance, p)``: the total variation distance between two status mixes (0: same mix,
    1: no status in common) and the chi-square homogeneity test's p-value."""
    nb, nc = sum(base.values()), sum(candidate.values())
    if not nb or not nc:
        return 0.0, 1.0
    keys = sorted(set(base) | set(candidate))
    distance = 0.5 * sum(abs(base.get(k, 0) / nb - candidate.get(k, 0) / nc) for k in keys)
    total = nb + nc
    stat = 0.0
    for k in keys:
        col = base.get(k, 0) + candidate.get(k, 0)
        for observed, row in ((base.get(k, 0), nb), (candidate.get(k, 0), nc)):
            expected = row * col / total
            if expected > 0:
                stat += (observed - expected) ** 2 / expected
    return distance, chi2_sf(stat, len(keys) - 1)


def bh_adjust(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate across many checks)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted
