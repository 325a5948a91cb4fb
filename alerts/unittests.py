"""promtool unit tests for every generated alert, derived from the same config as the rules.

Each alert gets scenarios built from its thresholds, so changing a threshold moves the tests with
it: the value just above the threshold fires exactly after ``for`` and not one evaluation before,
just below stays quiet, low traffic stays quiet, warning escalates to critical, info alerts fire
against a baseline history. Input series are synthetic counters and histograms whose rates are
exact, so the expected annotations (with the humanized value) can be predicted here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hlthz.alerts._promtool import Labels, counter, fmt, gauge, render, series_name
from hlthz.alerts.config import AlertsConfig, RouteRule, Scope, format_duration, parse_duration
from hlthz.alerts.humanize import humanize_duration, humanize_percentage
from hlthz.alerts.rules import AlertRule, all_alerts, baseline_interval, slo_windows
from hlthz.alerts.selector import absent_labels, parse_selector, sample_labels

# --------------------------------------------------------------------------------------------
# Test cases


@dataclass
class _Expect:
    """An alert expected to be firing: its rule and the labels/value of the series."""

    rule: AlertRule
    labels: Labels
    value: float


@dataclass
class _Case:
    name: str
    series: dict[str, str]
    checks: list[tuple[float, list[_Expect]]] = field(default_factory=list)


class _Builder:
    """Builds the scenarios of one config."""

    def __init__(self, full: AlertsConfig, scope: Scope | None = None) -> None:
        scope = scope or full.scopes[0]
        self.scope = scope
        self.full = full
        # The scope's thresholds, with the file's scrape interval, rate window and buckets.
        config = replace(
            full,
            alerts=scope.alerts,
            min_request_rate=scope.min_request_rate,
            slo=scope.slo,
            services=(),
        )
        self.cfg = config
        self.step = config.scrape_interval.seconds
        self.window = config.rate_window.seconds
        matchers = parse_selector(", ".join(p for p in (config.selector, *scope.job_matchers) if p))
        defaults = {"job": scope.service or "api", "instance": "127.0.0.1:8000"}
        self.labels = sample_labels(matchers, defaults)
        self.absent = absent_labels(matchers)
        self.job = {"job": self.labels["job"]}
        # One healthy target of every other scope, so that their "job has no target" terms
        # stay quiet in this scope's target tests.
        self.others = [
            {"job": other.service, "instance": "127.0.0.1:8000"}
            for other in full.scopes
            if other.service and other.service != scope.service
        ]
        every = all_alerts(full)
        self.rules: dict[tuple[str, str], AlertRule] = {
            (r.name, r.severity): r for r in every if r.service == scope.service and not r.route
        }
        self.route_rules = [r for r in every if r.service == scope.service and r.route]
        # Requests per second well above the traffic floor, and a rate well below it. rate()
        # divides the increase by the whole window, so a counter that starts inside the window
        # reads window/step times lower at first: clear the floor from the first evaluation.
        floor_window = self.window
        if config.slo is not None:
            floor_window = max(floor_window, min(_seconds(w[1]) for w in slo_windows(config)))
        floor_start = 2 * config.min_request_rate * floor_window / self.step
        self.rate = float(max(1, math.ceil(floor_start)))
        self.low_rate = config.min_request_rate / 2

    def rule(self, name: str, severity: str) -> AlertRule:
        return self.rules[(name, severity)]

    def steps(self, seconds: float) -> int:
        """Scrape steps covering ``seconds``."""
        return math.ceil(seconds / self.step)

    # -- histograms --------------------------------------------------------------------

    def histogram(
        self,
        phases: Sequence[tuple[dict[float, float], float, int]],
        labels: Labels,
        step: float | None = None,
    ) -> dict[str, str]:
        """Bucket and count series: each phase is (cumulative share per boundary, req/s, steps)."""
        bounds = self.cfg.buckets.request_duration_seconds
        step = step or self.step
        out = {}
        for le in (*bounds, math.inf):
            segments = [(rate * step * shares.get(le, 1.0), n) for shares, rate, n in phases]
            le_text = "+Inf" if le == math.inf else fmt(le)
            out[series_name("http_request_duration_seconds_bucket", {**labels, "le": le_text})] = (
                counter(segments)
            )
        count = [(rate * step, n) for _, rate, n in phases]
        out[series_name("http_request_duration_seconds_count", labels)] = counter(count)
        return out

    def profile_above(self, threshold: float) -> dict[float, float]:
        """Shares putting P95 just above ``threshold``: 6 % of requests in the next bucket."""
        return self._profile(threshold, 0.94)

    def profile_below(self, threshold: float) -> dict[float, float]:
        """Shares putting P95 just below ``threshold``: 4 % above it."""
        return self._profile(threshold, 0.96)

    def _profile(self, threshold: float, share: float) -> dict[float, float]:
        bounds = self.cfg.buckets.request_duration_seconds
        index = _index(bounds, threshold)
        # ``share`` of the requests in the bucket ending at the threshold, the rest in the next.
        return {
            le: 0.0 if i < index else share if i == index else 1.0 for i, le in enumerate(bounds)
        }

    def p95(self, shares: dict[float, float]) -> float:
        """histogram_quantile(0.95, ...) of a profile, as Prometheus computes it."""
        bounds = self.cfg.buckets.request_duration_seconds
        counts = [shares.get(le, 1.0) for le in bounds] + [1.0]
        rank = 0.95 * counts[-1]
        b = next(i for i, c in enumerate(counts) if c >= rank)
        if b == len(bounds):
            return bounds[-1]
        start = bounds[b - 1] if b > 0 else 0.0
        count = counts[b] - (counts[b - 1] if b > 0 else 0.0)
        rank -= counts[b - 1] if b > 0 else 0.0
        return start + (bounds[b] - start) * (rank / count)

    # -- scenarios -----------------------------------------------------------------------

    def latency(self) -> list[_Case]:
        a = self.cfg.alerts
        crit, warn = a.critical.latency_p95, a.warning.latency_p95
        name = "APIHighLatencyP95"
        fc, fw = _seconds(crit.for_), _seconds(warn.for_)
        s = self.step
        longest = max(fc, fw) + 2 * s
        total = self.steps(longest) + 2
        cases = []

        def expect(t: float, shares: dict[float, float], start: float) -> list[_Expect]:
            value = self.p95(shares)
            out = []
            for sev, cfg, hold in (("critical", crit, fc), ("warning", warn, fw)):
                if value > cfg.threshold and t >= start + hold:
                    out.append(_Expect(self.rule(name, sev), self.job, value))
            return out

        above_c = self.profile_above(crit.threshold)
        case = _Case(
            f"P95 just above the critical threshold {humanize_duration(crit.threshold)}",
            self.histogram([(above_c, self.rate, total)], self.labels),
        )
        for t in sorted({fc, s + fc, fw, s + fw}):
            case.checks.append((t, expect(t, above_c, s)))
        cases.append(case)

        below_c = self.profile_below(crit.threshold)
        case = _Case(
            "P95 just below the critical threshold: warning only",
            self.histogram([(below_c, self.rate, total)], self.labels),
        )
        case.checks.append((total * s, expect(total * s, below_c, s)))
        cases.append(case)

        below_w = self.profile_below(warn.threshold)
        case = _Case(
            "P95 just below the warning threshold: quiet",
            self.histogram([(below_w, self.rate, total)], self.labels),
        )
        case.checks.append((total * s, []))
        cases.append(case)

        above_w = self.profile_above(warn.threshold)
        p1 = self.steps(fw) + 2
        p2 = self.steps(self.window + fc) + 3
        case = _Case(
            "warning, then critical on escalation",
            self.histogram([(above_w, self.rate, p1), (above_c, self.rate, p2)], self.labels),
        )
        warn_only = [_Expect(self.rule(name, "warning"), self.job, self.p95(above_w))]
        case.checks.append((p1 * s, warn_only))
        if fc >= self.window:
            # The window holds only escalated samples, the critical alert is still pending.
            late = [_Expect(self.rule(name, "warning"), self.job, self.p95(above_c))]
            case.checks.append((p1 * s + fc, late))
        both = [
            _Expect(self.rule(name, "critical"), self.job, self.p95(above_c)),
            _Expect(self.rule(name, "warning"), self.job, self.p95(above_c)),
        ]
        case.checks.append(((p1 + p2) * s, both))
        cases.append(case)

        if self.low_rate > 0:
            case = _Case(
                "P95 above the critical threshold under the traffic floor: quiet",
                self.histogram([(above_c, self.low_rate, total)], self.labels),
            )
            case.checks.append((total * s, []))
            cases.append(case)
        return cases + self.routes()

    def routes(self) -> list[_Case]:
        """Routes with their own thresholds fire on their own; excluded routes never count."""
        a = self.cfg.alerts
        s = self.step
        fors = [_seconds(a.critical.latency_p95.for_), _seconds(a.warning.latency_p95.for_)]
        for r in self.route_rules:
            fors.append(_seconds(r.for_))
        t = s + max(fors) + s
        total = self.steps(t) + 2
        cases = []

        def firing(shares: dict[float, float], route: RouteRule, counted: bool) -> list[_Expect]:
            value = self.p95(shares)
            out = []
            for rule in self.route_rules:
                if rule.route == route and value > _threshold(rule):
                    out.append(_Expect(rule, self.route_labels(route), value))
            if counted:  # the job's own P95 sees the same requests
                for sev, cfg in (
                    ("critical", a.critical.latency_p95),
                    ("warning", a.warning.latency_p95),
                ):
                    if value > cfg.threshold:
                        out.append(_Expect(self.rule("APIHighLatencyP95", sev), self.job, value))
            return out

        for route in self.scope.route_latency:
            assert route.latency is not None
            critical, warning = route.latency
            labels = {**self.labels, **self.route_labels(route), "status_code": "200"}
            above = self.profile_above(critical.threshold)
            case = _Case(
                f"{route.key}: P95 just above its own critical threshold "
                f"{humanize_duration(critical.threshold)}",
                self.histogram([(above, self.rate, total)], labels),
            )
            case.checks.append((t, firing(above, route, not route.exclude)))
            cases.append(case)
            below = self.profile_below(warning.threshold)
            case = _Case(
                f"{route.key}: P95 just below its own warning threshold",
                self.histogram([(below, self.rate, total)], labels),
            )
            case.checks.append((t, firing(below, route, not route.exclude)))
            cases.append(case)
        for route in self.scope.excluded:
            if route.latency is not None:
                continue
            labels = {**self.labels, "route": route.route, "status_code": "200"}
            above = self.profile_above(a.critical.latency_p95.threshold)
            case = _Case(
                f"{route.key} is excluded: slow, and quiet",
                self.histogram([(above, self.rate, total)], labels),
            )
            case.checks.append((t, []))
            cases.append(case)
        return cases

    def route_labels(self, route: RouteRule) -> Labels:
        """The labels a route alert carries besides job."""
        method = {"method": route.method} if route.method else {}
        return {**self.job, **method, "route": route.route}

    def _requests(self, labels: Labels, segments: Sequence[tuple[float, float, int]]) -> dict:
        """2xx and 5xx request counters: segments of (req/s, error share, steps)."""
        base = {**labels, "method": "GET", "route": "/api/products"}
        ok = [(rate * (1 - err) * self.step, n) for rate, err, n in segments]
        bad = [(rate * err * self.step, n) for rate, err, n in segments]
        out = {
            series_name(
                "http_request_duration_seconds_count", {**base, "status_code": "200"}
            ): counter(ok)
        }
        if any(inc for inc, _ in bad):
            out[
                series_name("http_request_duration_seconds_count", {**base, "status_code": "500"})
            ] = counter(bad)
        return out

    def errors(self) -> list[_Case]:
        err = self.cfg.alerts.critical.error_rate
        rule = self.rule("APIHighErrorRate", "critical")
        hold, s = _seconds(err.for_), self.step
        margin = _nice(min(err.threshold, 1 - err.threshold) / 5)
        above, below = err.threshold + margin, err.threshold - margin
        total = self.steps(hold) + 3
        case = _Case(
            f"5xx share {humanize_percentage(above)} above {humanize_percentage(err.threshold)}",
            self._requests(self.labels, [(self.rate, above, total)]),
        )
        if hold > 0:
            case.checks.append((hold, []))
        case.checks.append((s + hold, [_Expect(rule, self.job, above)]))
        cases = [case]
        case = _Case(
            f"5xx share {humanize_percentage(below)} just below: quiet",
            self._requests(self.labels, [(self.rate, below, total)]),
        )
        case.checks.append((total * s, []))
        cases.append(case)
        if self.low_rate > 0:
            case = _Case(
                "every request fails under the traffic floor: quiet",
                self._requests(self.labels, [(self.low_rate, 1.0, total)]),
            )
            case.checks.append((total * s, []))
            cases.append(case)
        return cases

    def pool(self) -> list[_Case]:
        rule = self.rule("DBPoolExhausted", "critical")
        hold, s = _seconds(self.cfg.alerts.critical.pool_exhausted.for_), self.step
        total = self.steps(hold) + 3
        labels = {**self.labels, "pool": "default"}

        def series(in_use: float, size: float, pending: float) -> dict[str, str]:
            return {
                series_name("db_pool_connections_in_use", labels): gauge([(in_use, total)]),
                series_name("db_pool_connections_max", labels): gauge([(size, total)]),
                series_name("db_pool_pending_acquires", labels): gauge([(pending, total)]),
            }

        cases = []
        case = _Case("every connection in use", series(10, 10, 0))
        if hold > 0:
            case.checks.append((hold - s, []))
        case.checks.append((hold, [_Expect(rule, labels, 1.0)]))
        cases.append(case)
        case = _Case("callers waiting with a free connection counted", series(9, 10, 3))
        case.checks.append((hold, [_Expect(rule, labels, 0.9)]))
        cases.append(case)
        case = _Case("one connection free, nobody waiting: quiet", series(9, 10, 0))
        case.checks.append((total * s, []))
        cases.append(case)
        case = _Case("pool size unknown (0): quiet", series(0, 0, 0))
        case.checks.append((total * s, []))
        cases.append(case)
        return cases

    def target(self) -> list[_Case]:
        tm = self.cfg.alerts.critical.target_missing
        rule = self.rule("APITargetMissing", "critical")
        hold, s = _seconds(tm.for_), self.step
        lookback = _seconds(tm.lookback)
        total = self.steps(hold) + 3
        up = series_name("up", self.labels)
        seen = 4
        gone_at = (seen + 1) * s
        after = seen * s + lookback + s + hold + s
        healthy = {
            series_name("up", labels): gauge([(1, self.steps(after) + 2)]) for labels in self.others
        }
        cases = []
        case = _Case("target down (up == 0)", {up: gauge([(0, total)]), **healthy})
        if hold > 0:
            case.checks.append((hold - s, []))
        case.checks.append((hold, [_Expect(rule, self.labels, 0.0)]))
        cases.append(case)
        case = _Case("target up: quiet", {up: gauge([(1, total)]), **healthy})
        case.checks.append((total * s, []))
        cases.append(case)
        # The target disappears from discovery: Prometheus writes a stale marker, up{} vanishes.
        case = _Case(
            "job removed from discovery, then gone for longer than the lookback",
            {up: gauge([(1, seen + 1), ("stale", 1)]), **healthy},
        )
        if hold > 0:
            case.checks.append((gone_at + hold - s, []))
        case.checks.append((gone_at + hold, [_Expect(rule, self.job, 1.0)]))
        # After the lookback nothing matches at all: absent() takes over (in the scope of every
        # job no service names, the services' own terms do).
        late = (
            []
            if self.scope.service is None and self.full.services
            else [_Expect(rule, self.absent, 1.0)]
        )
        case.checks.append((after, late))
        cases.append(case)
        return cases

    def memory(self) -> list[_Case]:
        mem = self.cfg.alerts.warning.memory
        rule = self.rule("HighMemoryUsage", "warning")
        hold, s = _seconds(mem.for_), self.step
        total = self.steps(hold) + 3
        limit = 1024.0**3
        margin = _nice(min(mem.threshold, 1 - mem.threshold) / 4)

        def series(resident: float, size: float) -> dict[str, str]:
            return {
                series_name("process_resident_memory_bytes", self.labels): gauge(
                    [(resident, total)]
                ),
                series_name("process_memory_limit_bytes", self.labels): gauge([(size, total)]),
            }

        above = float(round(limit * (mem.threshold + margin)))
        below = float(round(limit * (mem.threshold - margin)))
        case = _Case(
            f"resident {humanize_percentage(above / limit)} of the limit", series(above, limit)
        )
        if hold > 0:
            case.checks.append((hold - s, []))
        case.checks.append((hold, [_Expect(rule, self.labels, above / limit)]))
        cases = [case]
        case = _Case("resident just below the threshold: quiet", series(below, limit))
        case.checks.append((total * s, []))
        cases.append(case)
        case = _Case("no known limit (0): quiet", series(above, 0))
        case.checks.append((total * s, []))
        cases.append(case)
        return cases

    def cache(self) -> list[_Case]:
        cfg = self.cfg.alerts.warning.cache_hit_rate
        rule = self.rule("LowCacheHitRate", "warning")
        hold, s = _seconds(cfg.for_), self.step
        total = self.steps(hold) + 3
        labels = {**self.labels, "cache": "redis"}
        margin = _nice(min(cfg.threshold, 1 - cfg.threshold) / 5)
        low, high = cfg.threshold - margin, cfg.threshold + margin

        def series(rate: float, hit: float) -> dict[str, str]:
            out = {
                series_name("cache_requests_total", {**labels, "result": "miss"}): counter(
                    [(rate * (1 - hit) * s, total)]
                )
            }
            if hit > 0:
                out[series_name("cache_requests_total", {**labels, "result": "hit"})] = counter(
                    [(rate * hit * s, total)]
                )
            return out

        key = {"job": labels["job"], "cache": "redis"}
        case = _Case(f"hit share {humanize_percentage(low)}", series(self.rate, low))
        if hold > 0:
            case.checks.append((hold, []))
        case.checks.append((s + hold, [_Expect(rule, key, low)]))
        cases = [case]
        case = _Case("no hit at all (no hit series yet)", series(self.rate, 0.0))
        case.checks.append((s + hold, [_Expect(rule, key, 0.0)]))
        cases.append(case)
        case = _Case(f"hit share {humanize_percentage(high)}: quiet", series(self.rate, high))
        case.checks.append((total * s, []))
        cases.append(case)
        if self.low_rate > 0:
            case = _Case("cache cold under the traffic floor: quiet", series(self.low_rate, 0.0))
            case.checks.append((total * s, []))
            cases.append(case)
        return cases

    def degraded(self, step: float) -> list[_Case]:
        deg = self.cfg.alerts.info.latency_degraded
        rule = self.rule("APILatencyDegraded", "info")
        bounds = self.cfg.buckets.request_duration_seconds
        base = {le: 1.0 for le in bounds}  # every request in the first bucket
        baseline = self.p95(base)
        slow = None
        for j in range(1, len(bounds)):
            shares = {le: (0.0 if i < j else 1.0) for i, le in enumerate(bounds)}
            if self.p95(shares) > deg.ratio * baseline * 1.05:
                slow = shares
                break
        if slow is None:
            return []
        hold = _seconds(deg.for_)
        phase_b = math.ceil((self.window + hold) / step) + 3
        phase_a = math.ceil(_seconds(deg.offset) / step) + phase_b
        end = (phase_a + phase_b) * step
        case = _Case(
            f"P95 rises from {humanize_duration(baseline)} to {humanize_duration(self.p95(slow))}",
            self.histogram(
                [(base, self.rate, phase_a), (slow, self.rate, phase_b)], self.labels, step
            ),
        )
        if hold > 0:
            case.checks.append((phase_a * step + hold - step, []))
        case.checks.append((end, [_Expect(rule, self.job, self.p95(slow))]))
        steady = _Case(
            "P95 as high as its baseline: quiet",
            self.histogram([(base, self.rate, phase_a + phase_b)], self.labels, step),
        )
        steady.checks.append((end, []))
        return [case, steady]

    def traffic(self, step: float) -> list[_Case]:
        tr = self.cfg.alerts.info.unusual_traffic
        rule = self.rule("UnusualTrafficPattern", "info")
        hold = _seconds(tr.for_)
        spike_steps = math.ceil((self.window + hold) / step) + 3
        # Long enough a history that the spike stays far outside it (z ~ sqrt(history/spike)).
        history = min(
            math.ceil(2 * (tr.zscore**2 + 1) * spike_steps),
            math.ceil(_seconds(tr.window) / step),
        )
        block = max(2, math.ceil(self.window / step))
        wave: list[tuple[float, int]] = []
        left, high = history, False
        while left > 0:
            n = min(block, left)
            wave.append((self.rate * (1.2 if high else 1.0) * step, n))
            left -= n
            high = not high
        spike = 5 * self.rate
        count = series_name(
            "http_request_duration_seconds_count", {**self.labels, "status_code": "200"}
        )
        case = _Case(
            f"traffic jumps to 5x its usual rate for {format_duration(spike_steps * step)}",
            {count: counter([*wave, (spike * step, spike_steps)])},
        )
        if hold > 0:
            case.checks.append((history * step + hold - step, []))
        end = (history + spike_steps) * step
        case.checks.append((end, [_Expect(rule, self.job, spike)]))
        quiet = _Case("usual ups and downs: quiet", {count: counter(wave)})
        quiet.checks.append(((history - 1) * step, []))
        return [case, quiet]

    def slo(self) -> list[_Case]:
        slo = self.cfg.slo
        assert slo is not None
        budget = 1 - slo.availability
        crit, warn = (
            self.rule("APIErrorBudgetBurn", "critical"),
            self.rule("APIErrorBudgetBurn", "warning"),
        )
        fc, fw = _seconds(crit.for_), _seconds(warn.for_)
        s = self.step
        table = slo_windows(self.cfg)
        total = self.steps(max(fc, fw)) + 3
        page = min(0.99, _nice(table[0][2] * budget * 1.25))
        ticket = _nice(table[-1][2] * budget * 1.5)
        cases = []
        case = _Case(
            f"{humanize_percentage(page)} of requests fail: page",
            self._requests(self.labels, [(self.rate, page, total)]),
        )
        case.checks.append((fc, []))
        case.checks.append(
            (
                s + fc,
                [_Expect(crit, self.job, page)]
                + ([_Expect(warn, self.job, page)] if fw <= fc else []),
            )
        )
        case.checks.append((s + fw, [_Expect(crit, self.job, page), _Expect(warn, self.job, page)]))
        cases.append(case)
        if ticket < table[-2][2] * budget and ticket < table[1][2] * budget:
            case = _Case(
                f"{humanize_percentage(ticket)} of requests fail: ticket",
                self._requests(self.labels, [(self.rate, ticket, total)]),
            )
            case.checks.append((s + fw, [_Expect(warn, self.job, ticket)]))
            cases.append(case)
        below = _nice(budget * 0.5)
        case = _Case(
            f"{humanize_percentage(below)} of requests fail: within budget",
            self._requests(self.labels, [(self.rate, below, total)]),
        )
        case.checks.append((total * s, []))
        cases.append(case)
        return cases


def _seconds(duration: str) -> float:
    return parse_duration(duration)


def _threshold(rule: AlertRule) -> float:
    assert rule.route is not None and rule.route.latency is not None
    critical, warning = rule.route.latency
    return critical.threshold if rule.severity == "critical" else warning.threshold


def _index(bounds: Sequence[float], value: float) -> int:
    return next(i for i, b in enumerate(bounds) if math.isclose(b, value, rel_tol=1e-9))


def _nice(value: float) -> float:
    """``value`` rounded to two significant digits, so percentages print exactly."""
    if value <= 0:
        return value
    digits = 1 - math.floor(math.log10(value))
    return round(value, digits)


# --------------------------------------------------------------------------------------------
# Files


def _alert_test(
    config: AlertsConfig, alertname: str, t: float, expected: list[_Expect]
) -> dict[str, Any]:
    exp = []
    for e in sorted(expected, key=lambda e: (e.rule.severity, sorted(e.labels.items()))):
        labels = {**e.labels, "severity": e.rule.severity, **e.rule.labels}
        templates = e.rule.to_rule(config)["annotations"]
        annotations = {k: render(v, e.labels, e.value) for k, v in templates.items()}
        exp.append({"exp_labels": dict(sorted(labels.items())), "exp_annotations": annotations})
    return {"eval_time": format_duration(t), "alertname": alertname, "exp_alerts": exp}


def build_tests(config: AlertsConfig) -> dict[str, dict[str, Any]]:
    """``{"<file>.yml": promtool test document}`` (``rule_files`` relative to tests/).

    The default scope's files are ``latency.yml``, ``errors.yml``...; a service's carry its
    name: ``latency.shop.yml``.
    """
    docs = {}
    for scope in config.scopes:
        b = _Builder(config, scope)
        info_step = baseline_interval(config).seconds
        groups: dict[str, tuple[str, float, list[_Case]]] = {
            "latency": ("APIHighLatencyP95", b.step, b.latency()),
            "errors": ("APIHighErrorRate", b.step, b.errors()),
        }
        if "pool" in scope.signals:
            groups["pool"] = ("DBPoolExhausted", b.step, b.pool())
        groups["target"] = ("APITargetMissing", b.step, b.target())
        groups["memory"] = ("HighMemoryUsage", b.step, b.memory())
        if "cache" in scope.signals:
            groups["cache"] = ("LowCacheHitRate", b.step, b.cache())
        groups["degraded"] = ("APILatencyDegraded", info_step, b.degraded(info_step))
        groups["traffic"] = ("UnusualTrafficPattern", info_step, b.traffic(info_step))
        if scope.slo is not None:
            groups["slo"] = ("APIErrorBudgetBurn", b.step, b.slo())
        suffix = f".{scope.service}" if scope.service else ""
        for name, (alertname, step, cases) in groups.items():
            tests = []
            for case in cases:
                tests.append(
                    {
                        "name": case.name,
                        "interval": format_duration(step),
                        "input_series": [
                            {"series": s, "values": v} for s, v in sorted(case.series.items())
                        ],
                        "alert_rule_test": [
                            _alert_test(config, alertname, t, exp)
                            for t, exp in sorted(case.checks, key=lambda c: c[0])
                        ],
                    }
                )
            docs[f"{name}{suffix}.yml"] = {
                "rule_files": ["../hlthz.rules.yml"],
                "evaluation_interval": format_duration(step),
                "tests": tests,
            }
    return docs
