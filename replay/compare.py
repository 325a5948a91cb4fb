"""The release gate: compare a candidate replay report with a baseline, per route and overall.

A verdict is statistical (docs/gate.md): each check estimates the change with its uncertainty
(:mod:`hlthz.replay.stats`; the two sides of one interleaved report are drawn together, so noise
they lived through together cancels), p-values are corrected across every check of the comparison
(Benjamini-Hochberg), and a check **fails** only when the change is significant *and* beyond the
gate's limit *and*, for a relative latency gate, beyond an absolute floor (``min_effect``, 2 ms).
A check that can neither fail nor be shown to be within its limit is **inconclusive** and says
the smallest change it could have detected with that many requests.

Before judging, :func:`compare_reports` refuses two reports it cannot trust
(:class:`~hlthz.errors.ReplayError`, exit 2, one line naming the report and the reason): an
interrupted run or one with lost workers, a generator that was the bottleneck (schedule lag
P99 over ``max_lag``, 100 ms), reports of different captures (``run.capture_fingerprint``),
request counts further apart than ``count_tolerance``, reports without latency samples (written
by an older hlthz), each with an :class:`Allow` switch (``--allow-...``); and a run that sent
nothing, always.

The gates are :class:`~hlthz.replay.gates.Gate` expressions (``p95 > +10%``, docs/gate.md),
set with :class:`~hlthz.replay.gates.GateOptions` (both re-exported here). A route with fewer
than ``min_samples`` requests on either side is reported as ``insufficient``, not judged: a P95
of a handful of requests is noise. Routes present on one side only are listed, not judged.

Both sides are :class:`~hlthz.replay.report.Report` objects, checked when they were read
(:meth:`Report.load`), so a gate reads typed fields; only a figure the format lets a report leave
out (a route's ``service_time_ms``) can still be missing, and that is one line naming it.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hlthz.errors import ReplayError
from hlthz.replay import stats
from hlthz.replay.gates import (
    DEFAULT_GATES,
    LATENCY,
    OPS,
    SHARES,
    Allow,
    Gate,
    GateOptions,
)
from hlthz.replay.report import Report, RouteReport, Samples, Summary
from hlthz.replay.verdict import COMPARISON_VERSION, Check, Comparison

__all__ = [
    "COMPARISON_VERSION",
    "DEFAULT_GATES",
    "TAIL_SAMPLES",
    "Allow",
    "Check",
    "Comparison",
    "Gate",
    "GateOptions",
    "compare_reports",
    "refuse_unfit",
]

#: A percentile is judged only when at least this many requests of a side lie above it.
TAIL_SAMPLES = 5
#: The percentiles a sample is judged at, in the order of ``LATENCY``.
_LEVELS = (0.5, 0.9, 0.95, 0.99)


# -- refusing reports that cannot be judged ------------------------------------------------------


def refuse_unfit(
    base: Report, candidate: Report, options: GateOptions, names: tuple[str, str]
) -> None:
    """Raise :class:`ReplayError` (exit 2) naming the report and the reason when a verdict on
    these two reports could not be trusted; see the module doc and :class:`Allow`."""
    allow = options.allow
    for report, name in ((base, names[0]), (candidate, names[1])):
        s = report.summary
        if s.requests == 0:
            raise ReplayError(f"{name}: no request was sent or answered; nothing to judge")
        if report.interrupted and not allow.interrupted:
            raise ReplayError(
                f"{name}: the run was interrupted ({s.requests:,} requests): it covers part of "
                f"the capture only; re-run it, or pass --allow-interrupted"
            )
        workers = report.workers
        if workers is not None and workers.lost and not allow.interrupted:
            raise ReplayError(
                f"{name}: {len(workers.lost)} worker(s) were lost, about "
                f"{workers.missing_share or 0:.0%} of the capture is missing; re-run it, or pass "
                f"--allow-interrupted"
            )
        if s.schedule_lag_ms.p99 > options.max_lag and not allow.lag:
            raise ReplayError(
                f"{name}: the generator was the bottleneck (schedule lag p99 "
                f"{s.schedule_lag_ms.p99:,.0f} ms > {options.max_lag:g} ms): its latencies measure "
                f"the load generator; re-run on a quieter machine or with --workers, or pass "
                f"--allow-lag"
            )
        if s.samples is None and not allow.no_samples:
            raise ReplayError(
                f"{name}: no latency samples (a report of an older hlthz, or made by hand); "
                f"re-run it with this hlthz, or pass --allow-no-samples to judge on its "
                f"percentiles alone"
            )
    fb = base.run.capture_fingerprint if base.run else None
    fc = candidate.run.capture_fingerprint if candidate.run else None
    if fb and fc and fb != fc and not allow.different_captures:
        raise ReplayError(
            f"{names[1]}: replayed another capture than {names[0]} (fingerprint {fc} vs {fb}); "
            f"replay the same capture, or pass --allow-different-captures"
        )
    nb, nc = base.summary.requests, candidate.summary.requests
    apart = abs(nb - nc) / max(nb, nc)
    if apart > options.count_tolerance and not allow.count_mismatch:
        # Name the report with fewer requests: it is the one that probably lost some.
        (few, few_name), (many, many_name) = sorted(((nb, names[0]), (nc, names[1])))
        raise ReplayError(
            f"{few_name}: {few:,} requests against {many:,} in {many_name} ({apart:.1%} apart, "
            f"more than --count-tolerance {options.count_tolerance:.0%}); replay the same "
            f"capture with the same options, or pass --allow-count-mismatch"
        )


# -- judging ---------------------------------------------------------------------------------


Entry = Summary | RouteReport


def _value(entry: Entry, metric: str, duration: float) -> float | None:
    """``metric`` of a summary or a route; ``None`` when the report left that figure out."""
    if metric == "error_rate":
        if entry.error_rate is not None:
            return entry.error_rate
        return entry.errors / entry.requests if entry.requests else 0.0
    if metric == "rps":
        if entry.rps is not None:
            return entry.rps
        return entry.requests / duration if duration > 0 else 0.0
    if metric == "4xx_rate":
        return _hits(entry, metric) / entry.requests if entry.requests else 0.0
    if metric.startswith("service_"):
        service = entry.service_time_ms
        return None if service is None else service.value(metric.removeprefix("service_"))
    return entry.latency_ms.value(metric)


def _hits(entry: Entry, metric: str) -> int:
    if metric == "error_rate":
        return entry.errors
    statuses = entry.statuses or {}
    if metric == "4xx_rate":
        return sum(n for code, n in statuses.items() if code.startswith("4") and len(code) == 3)
    captured = entry.captured or {}
    return captured.get("changed", 0)


def _field(metric: str) -> str:
    if metric in ("error_rate", "rps"):
        return metric
    if metric in ("4xx_rate", "status_change"):
        return "statuses"
    if metric == "capture_mismatch":
        return "captured"
    if metric.startswith("service_"):
        return f"service_time_ms.{metric.removeprefix('service_')}"
    return f"latency_ms.{metric}"


def _no_field(metric: str, side: str, scope: str) -> ReplayError:
    return ReplayError(
        f"{side} report: {scope}: no {_field(metric)}; a gate on {metric} needs reports "
        f"written by 'hlthz replay run --report'"
    )


def _read(entry: Entry, metric: str, duration: float, side: str, scope: str) -> float:
    value = _value(entry, metric, duration)
    if value is None:
        raise _no_field(metric, side, scope)
    return value


def _need(entry: Entry, metric: str, side: str, scope: str) -> None:
    missing = (metric in ("4xx_rate", "status_change") and entry.statuses is None) or (
        metric == "capture_mismatch" and entry.captured is None
    )
    if missing:
        raise _no_field(metric, side, scope)


def _change(b: float, c: float) -> float:
    # From zero, any growth is infinite: a relative gate then fails on any new latency/errors.
    return (c - b) / b if b else (0.0 if c == 0 else math.copysign(math.inf, c))


@dataclass
class _Pending:
    """A check awaiting the correction across checks: ``x`` is how much worse the candidate
    is (in the metric's unit, signed so that larger is worse), ``threshold`` how much worse
    it may be, ``estimate`` the statistics, ``ci_pass``: pass only when the upper bound is within
    the threshold (latency), else when the estimate is (shares). ``counted``: whether the check
    counts in the correction; not when no data could make its test reject (:func:`_testable`)."""

    check: Check
    x: float
    threshold: float
    estimate: stats.Estimate
    ci_pass: bool
    scale: float  # divides x-units into the reported unit of low/high/detectable (base or 1)
    counted: bool = True


def _values(sample: Samples, kind: str) -> tuple[float, ...]:
    """A sample's latencies (``kind`` "latency") or service times ("service")."""
    return sample.latency_ms if kind == "latency" else sample.service_time_ms


def _testable(*mixes: Mapping[str, int] | None) -> bool:
    """Whether a comparison of these status mixes can find anything: not when all requests on
    both sides got one status. A test conditioned on the pooled
    counts (Tarone's rule for discrete tests) then has a single possible outcome and p = 1,
    so it is left out of the correction instead of diluting the checks that can fail."""
    pooled = {key for mix in mixes for key, n in (mix or {}).items() if n}
    return len(pooled) > 1


class _Judge:
    def __init__(self, base: Report, candidate: Report, options: GateOptions) -> None:
        self.base, self.candidate, self.options = base, candidate, options
        self.durations = (base.summary.duration_s, candidate.summary.duration_s)
        self.pending: list[_Pending] = []
        self._boot: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
        self._paired: dict[tuple[str, str], list[float] | None] = {}
        # The two sides of one interleaved replay were measured side by side.
        self.interleaved = candidate.baseline is base

    # -- latency percentiles -------------------------------------------------------------

    def _bootstrap(self, entry: Entry, scope: str, side: str, kind: str) -> tuple[list, list]:
        """Point values and bootstrap standard errors of p50..p99 of one side's sample."""
        key = (scope, side, kind)
        if key not in self._boot:
            sample = entry.samples
            assert sample is not None
            values = _values(sample, kind)
            seed = self.options.seed + zlib.crc32(f"{scope}|{side}|{kind}".encode())
            # The sample is in send order (timing.Reservoir): a moving-block
            # bootstrap keeps bursts together.
            self._boot[key] = stats.quantile_errors(
                list(values),
                _LEVELS,
                resamples=self.options.resamples,
                rng=random.Random(seed),
                block=stats.block_length(len(values)),
            )
        return self._boot[key]

    def _points(self, entry: Entry, scope: str, side: str, kind: str) -> list[float]:
        """p50..p99 of one side's sample (read off its bootstrap when that already ran)."""
        boot = self._boot.get((scope, side, kind))
        if boot is not None:
            return boot[0]
        sample = entry.samples
        assert sample is not None
        ordered = sorted(_values(sample, kind))
        return [stats.quantile(ordered, q) for q in _LEVELS]

    def _paired_errors(self, b: Entry, c: Entry, scope: str, kind: str) -> list[float] | None:
        """Standard errors of the candidate-minus-baseline p50..p99 when the two samples pair
        up (:func:`stats.paired_quantile_errors`): the sides of one interleaved replay whose
        samples hold the same requests (the same ``digest``: value ``i`` of each side is one
        request, sent to both builds); ``None`` otherwise."""
        key = (scope, kind)
        if key not in self._paired:
            sb, sc = b.samples, c.samples
            assert sb is not None and sc is not None
            vb, vc = _values(sb, kind), _values(sc, kind)
            if sb.digest is None or sc.digest is None:
                # A report from before samples had a digest: kept in completion order, they
                # pair by position when both sides saw as many requests.
                same = sb.seen == sc.seen
            else:
                same = sb.digest == sc.digest
            errors = None
            if self.interleaved and same and len(vb) == len(vc) > 1:
                seed = self.options.seed + zlib.crc32(f"{scope}|paired|{kind}".encode())
                errors = stats.paired_quantile_errors(
                    vb,
                    vc,
                    _LEVELS,
                    resamples=self.options.resamples,
                    rng=random.Random(seed),
                    block=stats.block_length(len(vb)),
                )
            self._paired[key] = errors
        return self._paired[key]

    def latency(self, scope: str, gate: Gate, b: Entry, c: Entry) -> Check | None:
        metric = gate.metric
        kind = "service" if metric.startswith("service_") else "latency"
        point = metric.removeprefix("service_")
        if point == "max" or b.samples is None or c.samples is None:
            return None  # judged on the figures
        if kind == "service" and (not b.samples.service_time_ms or not c.samples.service_time_ms):
            return None
        index = LATENCY.index(point)
        q = _LEVELS[index]
        fewest = min(len(b.samples.latency_ms), len(c.samples.latency_ms))
        if fewest * (1 - q) < TAIL_SAMPLES:
            # The bootstrap cannot judge a percentile resting on a handful of requests (with 40
            # requests the P99 is the slowest one): say how many it needs.
            need = math.ceil(TAIL_SAMPLES / (1 - q))
            note = (
                f"{point.upper()} of {fewest:,} requests rests on fewer than {TAIL_SAMPLES} "
                f"requests above it: needs {need:,} a side"
            )
            return Check(scope, gate.text, None, None, None, "insufficient", note)
        bv = self._points(b, scope, "base", kind)[index]
        cv = self._points(c, scope, "candidate", kind)[index]
        sign = 1.0 if gate.op in (">", ">=") else -1.0
        method = "bootstrap"
        if gate.relative:
            paired = self._paired_errors(b, c, scope, kind)
            if paired is not None:
                se, method = paired[index], "paired bootstrap"
            else:
                se = math.hypot(
                    self._bootstrap(b, scope, "base", kind)[1][index],
                    self._bootstrap(c, scope, "candidate", kind)[1][index],
                )
            x = sign * (cv - bv)
            threshold = max(sign * gate.limit * bv, self.options.min_effect)
            scale = bv or 1.0
            change = _change(bv, cv)
        else:
            se = self._bootstrap(c, scope, "candidate", kind)[1][index]
            x = sign * (cv - gate.limit)
            threshold = 0.0
            scale = 1.0
            change = _change(bv, cv)
        estimate = stats.Estimate(bv, cv, x, se, stats.p_worse(x, se))
        check = Check(scope, gate.text, round(bv, 6), round(cv, 6), change, "pending")
        check.method = method
        self.pending.append(_Pending(check, x, threshold, estimate, True, scale))
        return check

    # -- shares ---------------------------------------------------------------------------

    def share(self, scope: str, gate: Gate, b: Entry, c: Entry) -> Check:
        metric = gate.metric
        sign = 1.0 if gate.op in (">", ">=") else -1.0
        if metric == "status_change":
            distance, p = stats.status_shift(b.statuses or {}, c.statuses or {})
            x = sign * (distance - gate.limit)
            check = Check(scope, gate.text, 0.0, round(distance, 6), None, "pending")
            check.method = "chi-square"
            n = min(b.requests, c.requests)
            # the error of a share near the distance, for the detectable change
            se = math.sqrt(max(distance * (1 - distance), 0.25 / n) / n) if n else math.inf
            estimate = stats.Estimate(0.0, distance, x, se, p if sign > 0 else 1.0 - p)
            counted = _testable(b.statuses, c.statuses)
            self.pending.append(_Pending(check, x, 0.0, estimate, False, 1.0, counted))
            return check
        if metric == "capture_mismatch":
            captured_c = c.captured or {}
            known = captured_c.get("same", 0) + captured_c.get("changed", 0)
            hits = captured_c.get("changed", 0)
            est = stats.share_against(hits, known, gate.limit)
            x = sign * est.diff
            check = Check(scope, gate.text, None, round(est.candidate, 6), None, "pending")
            check.method = "binomial"
            if not known:
                check.status, check.note = "insufficient", "the capture has no statuses"
                return check
            est = replace(est, diff=x, p=est.p if sign > 0 else 1.0 - est.p)
            self.pending.append(_Pending(check, x, 0.0, est, False, 1.0))
            return check
        hb, hc = _hits(b, metric), _hits(c, metric)
        if gate.relative:
            est = stats.share_change(hb, b.requests, hc, c.requests, lower_is_worse=sign < 0)
            bv, cv = est.base, est.candidate
            x = sign * (cv - bv)
            threshold = max(sign * gate.limit * bv, 0.0)
            scale = bv or 1.0
            # Testable unless no request hit, or every one did (Tarone, as for statuses).
            counted = 0 < hb + hc < b.requests + c.requests
        else:
            est = stats.share_against(hc, c.requests, gate.limit)
            bv, cv = hb / b.requests if b.requests else 0.0, est.candidate
            x = sign * (cv - gate.limit)
            est = replace(est, p=est.p if sign > 0 else 1.0 - est.p)
            threshold, scale = 0.0, 1.0
            counted = True  # against a fixed limit: any count can be judged
        check = Check(scope, gate.text, round(bv, 6), round(cv, 6), _change(bv, cv), "pending")
        check.method = "binomial"
        pending = _Pending(check, x, threshold, replace(est, diff=x), False, scale, counted)
        self.pending.append(pending)
        return check

    # -- figures only (max, rps, reports without samples) ---------------------------------

    def figures(self, scope: str, gate: Gate, b: Entry, c: Entry) -> Check:
        bv = _read(b, gate.metric, self.durations[0], "baseline", scope)
        cv = _read(c, gate.metric, self.durations[1], "candidate", scope)
        change = _change(bv, cv)
        subject = change if gate.relative else cv
        failed = OPS[gate.op](subject, gate.limit)
        if (
            failed
            and gate.relative
            and gate.metric != "rps"
            and abs(cv - bv) < (self.options.min_effect)
        ):
            failed = False  # within the absolute floor
        check = Check(scope, gate.text, round(bv, 6), round(cv, 6), change, "pass")
        check.status, check.method = ("fail" if failed else "pass"), "figures"
        return check

    # -- the correction and the verdicts --------------------------------------------------

    def settle(self) -> None:
        alpha = self.options.alpha
        if not self.pending:
            return
        family = [item for item in self.pending if item.counted]
        adjusted = iter(stats.bh_adjust([item.estimate.p for item in family]))
        m = max(len(family), 1)
        for item in self.pending:
            p_adj = next(adjusted) if item.counted else 1.0
            check, est = item.check, item.estimate
            check.p, check.p_adjusted = est.p, p_adj
            finite = math.isfinite(est.se)
            upper = est.upper(alpha) if finite else math.inf
            lower = est.lower(alpha) if finite else -math.inf
            check.low, check.high = lower / item.scale, upper / item.scale
            if p_adj < alpha and item.x > item.threshold:
                check.status = "fail"
                continue
            within = upper <= item.threshold if item.ci_pass else item.x <= item.threshold
            if within:
                check.status = "pass"
                continue
            check.status = "inconclusive"
            detectable = est.detectable(alpha / m) if finite else math.inf
            check.detectable = detectable / item.scale
            n = min(self.base_n(check.scope), self.cand_n(check.scope))
            if item.scale != 1.0:
                what = f"{check.detectable:.0%} ({detectable:.3g} ms)"
            else:
                what = f"{check.detectable:.3g}"
            why = "not significant" if item.x > item.threshold else "the uncertainty is too large"
            check.note = (
                f"{why}: with {n:,} requests a side, only a change of {what} or more is "
                f"reliably detected"
            )

    def base_n(self, scope: str) -> int:
        return _requests(self.base, scope)

    def cand_n(self, scope: str) -> int:
        return _requests(self.candidate, scope)


def _requests(report: Report, scope: str) -> int:
    if scope == "overall":
        return report.summary.requests
    for route in report.routes:
        if route.key == scope:
            return route.requests
    return 0


def compare_reports(
    base: Report,
    candidate: Report,
    options: GateOptions | None = None,
    *,
    fail_on: list[str] | tuple[str, ...] | None = None,
    min_samples: int | None = None,
    names: tuple[str, str] = ("baseline report", "candidate report"),
) -> Comparison:
    """Judge ``candidate`` against ``base``: every gate overall and per route (see the module
    doc). ``fail_on`` and ``min_samples`` override ``options``. ``names`` start the one-line
    refusals (the CLI passes the file names). Raises :class:`ReplayError` for reports that
    cannot be judged."""
    options = options or GateOptions()
    if fail_on is not None:
        options = replace(options, fail_on=tuple(fail_on))
    if min_samples is not None:
        options = replace(options, min_samples=min_samples)
    refuse_unfit(base, candidate, options, names)
    gates = [Gate.parse(text) for text in options.fail_on]
    comparison = Comparison(base, candidate, gates, min_samples=options.min_samples)
    comparison.options = options
    comparison.warnings = [f"baseline: {w}" for w in base.warnings] + [
        f"candidate: {w}" for w in candidate.warnings
    ]
    judge = _Judge(base, candidate, options)
    scopes: list[tuple[str, Entry | None, Entry | None]] = [
        ("overall", base.summary, candidate.summary)
    ]
    base_routes = {route.key: route for route in base.routes}
    cand_routes = {route.key: route for route in candidate.routes}
    for key in sorted(base_routes.keys() | cand_routes.keys()):
        scopes.append((key, base_routes.get(key), cand_routes.get(key)))
    for scope, b, c in scopes:
        for gate in gates:
            if b is None or c is None:
                side = "baseline" if b is None else "candidate"
                note = f"not in the {side}"
                comparison.checks.append(Check(scope, gate.text, None, None, None, "missing", note))
                continue
            fewest = min(b.requests, c.requests)
            if fewest < options.min_samples:
                note = f"{fewest} requests < {options.min_samples}: too few to judge"
                comparison.checks.append(
                    Check(scope, gate.text, None, None, None, "insufficient", note)
                )
                continue
            comparison.checks.append(_check(judge, scope, gate, b, c))
    judge.settle()
    return comparison


def _check(judge: _Judge, scope: str, gate: Gate, b: Entry, c: Entry) -> Check:
    metric = gate.metric
    if metric in SHARES:
        if metric in ("4xx_rate", "status_change") and (b.statuses is None or c.statuses is None):
            note = "a report holds no statuses (written by hand or by an older hlthz)"
            return Check(scope, gate.text, None, None, None, "insufficient", note)
        for entry, side in ((b, "baseline"), (c, "candidate")):
            _need(entry, metric, side, scope)
        return judge.share(scope, gate, b, c)
    if metric != "rps":
        check = judge.latency(scope, gate, b, c)
        if check is not None:
            return check
    return judge.figures(scope, gate, b, c)
