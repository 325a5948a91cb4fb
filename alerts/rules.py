"""Prometheus rule groups (recording rules and alerts) from an :class:`AlertsConfig`.

Alerts never aggregate raw series themselves: recording rules named ``level:metric:operations``
(``job:http_request_duration_seconds:p95_rate5m``) do the ``rate``/``histogram_quantile`` work
once per evaluation, and the dashboards read the same series. Everything aggregates per ``job``
at least. Ratio and latency alerts carry a traffic floor (``min_request_rate``) because two slow
requests out of three are not an incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hlthz.alerts.config import (
    AlertsConfig,
    Duration,
    Links,
    RouteRule,
    Scope,
    Slo,
    format_duration,
)
from hlthz.alerts.humanize import humanize_duration, humanize_percentage

#: Dashboard UIDs owned by the dashboards generator; alerts link to them.
DASHBOARD_API = "hlthz-api"
DASHBOARD_DATABASE = "hlthz-database"
DASHBOARD_CACHE_JOBS = "hlthz-cache-jobs"

#: The SRE workbook's multi-window multi-burn-rate table for a 30-day objective:
#: (long window s, short window s, burn rate, severity). Other windows scale proportionally.
SLO_BURN_TABLE = (
    (3600, 300, 14.4, "critical"),
    (6 * 3600, 1800, 6.0, "critical"),
    (86400, 2 * 3600, 3.0, "warning"),
    (3 * 86400, 6 * 3600, 1.0, "warning"),
)
_SLO_FOR = {"critical": "2m", "warning": "15m"}
_5XX = 'status_code=~"5.."'
_HIT = 'result="hit"'


@dataclass(frozen=True)
class AlertRule:
    """One generated alerting rule and what the runbook and test generators need to know."""

    name: str
    severity: str
    expr: str
    for_: str
    summary: str
    description: str
    dashboard_uid: str
    #: Key of the runbook text in templates/runbook.md.j2.
    topic: str
    labels: dict[str, str] = field(default_factory=dict)
    #: The service (Prometheus job) whose thresholds these are; None for every other job.
    service: str | None = None
    #: The route with its own thresholds this alert watches, if any.
    route: RouteRule | None = None
    #: The links of its scope (None: the config's).
    links: Links | None = None

    def to_rule(self, config: AlertsConfig) -> dict[str, Any]:
        links = self.links or config.links
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if Duration(self.for_).seconds > 0:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": links.runbook(self.name),
            "dashboard_url": links.dashboard(self.dashboard_uid),
        }
        return rule


class Names:
    """Recording rule names for one config (they embed the rate window, as convention has it)."""

    def __init__(self, config: AlertsConfig) -> None:
        w = config.rate_window
        window = config.alerts.info.unusual_traffic.window
        self.requests = f"job:http_requests:rate{w}"
        self.errors = f"job:http_request_errors:rate{w}"
        self.error_ratio = f"job:http_request_errors:ratio_rate{w}"
        self.p95 = f"job:http_request_duration_seconds:p95_rate{w}"
        self.cache_requests = f"job_cache:cache_requests:rate{w}"
        self.cache_hit_ratio = f"job_cache:cache_hit:ratio_rate{w}"
        self.requests_avg = f"job:http_requests:rate{w}_avg{window}"
        self.requests_stddev = f"job:http_requests:rate{w}_stddev{window}"
        self.route_requests = f"job_route:http_requests:rate{w}"
        self.route_p95 = f"job_route:http_request_duration_seconds:p95_rate{w}"


def baseline_interval(config: AlertsConfig) -> Duration:
    """Evaluation interval of the baseline group: week-long statistics need a point every half
    rate window at most (capped at 2m, well inside Prometheus' 5m staleness lookback), and
    never more often than Prometheus scrapes."""
    seconds = max(config.scrape_interval.seconds, min(120.0, config.rate_window.seconds / 2))
    return Duration.from_seconds(seconds)


def _sel(config: AlertsConfig, *matchers: str) -> str:
    parts = [*matchers, *([config.selector] if config.selector else [])]
    return "{" + ", ".join(parts) + "}" if parts else ""


def _only(scope: Scope) -> str:
    """The scope's job matchers in braces, to narrow a recorded series (``''``: no services)."""
    return "{" + ", ".join(scope.job_matchers) + "}" if scope.job_matchers else ""


def _excludes_services(scope: Scope) -> bool:
    # The default scope of a file with services: "nothing else is scraped" is normal there, and
    # each service has its own absent() term.
    return scope.service is None and bool(scope.job_matchers)


def _exclusions(scope: Scope) -> tuple[str, ...]:
    return tuple(f"route!={m.split('=', 1)[1]}" for r in scope.excluded for m in r.matchers)


def _selections(config: AlertsConfig, *matchers: str) -> list[str]:
    """Label selectors whose union is every request series of every scope, less the routes
    each scope excludes: one selector when the scopes exclude the same routes."""
    scopes = config.scopes
    if len({_exclusions(s) for s in scopes}) == 1:
        return [_sel(config, *matchers, *_exclusions(scopes[0]))]
    return [_sel(config, *matchers, *s.job_matchers, *_exclusions(s)) for s in scopes]


def _sum_rate(config: AlertsConfig, metric: str, by: str, window: str, *matchers: str) -> str:
    """``sum by (by) (rate(metric{...}[window]))`` over :func:`_selections`."""
    terms = [f"rate({metric}{sel}[{window}])" for sel in _selections(config, *matchers)]
    if len(terms) == 1:
        return f"sum by ({by}) ({terms[0]})"
    return f"sum by ({by}) (\n  " + "\n  or\n  ".join(terms) + "\n)"


def _route_selector(config: AlertsConfig, scope: Scope, route: RouteRule, *extra: str) -> str:
    return _sel(config, *scope.job_matchers, *route.matchers, *extra)


def _route_name(route: RouteRule) -> str:
    """How an annotation names a route: ``{{ $labels.method }} {{ $labels.route }}``."""
    method = "{{ $labels.method }} " if route.method else ""
    return method + "{{ $labels.route }}"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _dur(seconds: float) -> str:
    return humanize_duration(seconds)


def recording_rules(config: AlertsConfig) -> list[dict[str, Any]]:
    """The per-job request, error, latency and cache series every alert and dashboard reads,
    and the per-route series of the routes with their own thresholds."""
    n = Names(config)
    w = config.rate_window
    req = "http_request_duration_seconds"
    rules: list[dict[str, Any]] = [
        {"record": n.requests, "expr": _sum_rate(config, f"{req}_count", "job", w)},
        {"record": n.errors, "expr": _sum_rate(config, f"{req}_count", "job", w, _5XX)},
        {
            # A job with no 5xx series yet has an error ratio of 0, not none.
            "record": n.error_ratio,
            "expr": f"(\n  {n.errors}\n  or\n  0 * {n.requests}\n)\n/\n{n.requests}",
        },
        {
            "record": n.p95,
            "expr": "histogram_quantile(\n  0.95,\n  "
            f"{_sum_rate(config, f'{req}_bucket', 'job, le', w)}\n)",
        },
    ]
    if "cache" in config.all_signals:
        rules += [
            {
                "record": n.cache_requests,
                "expr": f"sum by (job, cache) (rate(cache_requests_total{_sel(config)}[{w}]))",
            },
            {
                # prometheus_client creates the hit series on the first hit: a cache that never
                # hits has no series to divide, so fill in 0.
                "record": n.cache_hit_ratio,
                "expr": "(\n  sum by (job, cache) (rate(cache_requests_total"
                f"{_sel(config, _HIT)}[{w}]))\n  or\n  0 * {n.cache_requests}\n)\n"
                f"/\n{n.cache_requests}",
            },
        ]
    for scope in config.scopes:
        for route in scope.route_latency:
            sel = _route_selector(config, scope, route)
            rules += [
                {
                    "record": n.route_requests,
                    "expr": f"sum by ({route.by}) (rate({req}_count{sel}[{w}]))",
                },
                {
                    "record": n.route_p95,
                    "expr": "histogram_quantile(\n  0.95,\n  "
                    f"sum by ({route.by}, le) (rate({req}_bucket{sel}[{w}]))\n)",
                },
            ]
    return rules


def baseline_rules(config: AlertsConfig) -> list[dict[str, Any]]:
    """Week-long mean and standard deviation of the request rate, for the z-score alert."""
    n = Names(config)
    window = config.alerts.info.unusual_traffic.window
    return [
        {"record": n.requests_avg, "expr": f"avg_over_time({n.requests}[{window}])"},
        {"record": n.requests_stddev, "expr": f"stddev_over_time({n.requests}[{window}])"},
    ]


def alert_rules(config: AlertsConfig) -> list[AlertRule]:
    """Every alert of docs/alerts.md, for every scope (default, then each service)."""
    rules: list[AlertRule] = []
    for scope in config.scopes:
        rules += scope_alerts(config, scope)
    return rules


def scope_alerts(config: AlertsConfig, scope: Scope) -> list[AlertRule]:
    """The alerts of one scope, in a fixed order: its thresholds, its signals, its routes."""
    n = Names(config)
    a = scope.alerts
    only = _only(scope)
    floor = f"and on (job)\n{n.requests} >= {_num(scope.min_request_rate)}"
    api = DASHBOARD_API + scope.suffix
    common: dict[str, Any] = {"service": scope.service, "links": scope.links}
    rules: list[AlertRule] = []
    for severity, cfg in (("critical", a.critical.latency_p95), ("warning", a.warning.latency_p95)):
        rules.append(
            AlertRule(
                name="APIHighLatencyP95",
                severity=severity,
                expr=f"{n.p95}{only} > {_num(cfg.threshold)}\n{floor}",
                for_=cfg.for_,
                summary="P95 latency of {{ $labels.job }} is above "
                f"{_dur(cfg.threshold)} ({severity})",
                description="95 % of the requests to job {{ $labels.job }} took at most "
                "{{ $value | humanizeDuration }} over the last "
                f"{config.rate_window}, above the {severity} threshold of "
                f"{_dur(cfg.threshold)} for more than {cfg.for_} (P95 estimated from the "
                "histogram buckets).",
                dashboard_uid=api,
                topic="latency",
                **common,
            )
        )
    for route in scope.route_latency:
        assert route.latency is not None
        name = _route_name(route)
        for severity, cfg in zip(("critical", "warning"), route.latency, strict=True):
            rules.append(
                AlertRule(
                    name="APIHighLatencyP95",
                    severity=severity,
                    expr=f"{n.route_p95}{_route_selector(config, scope, route)} > "
                    f"{_num(cfg.threshold)}\nand on ({route.by})\n"
                    f"{n.route_requests} >= {_num(scope.min_request_rate)}",
                    for_=cfg.for_,
                    summary=f"P95 latency of {name} on {{{{ $labels.job }}}} is above "
                    f"{_dur(cfg.threshold)} ({severity})",
                    description=f"95 % of the requests to {name} on job {{{{ $labels.job }}}} "
                    "took at most {{ $value | humanizeDuration }} over the last "
                    f"{config.rate_window}, above this route's {severity} threshold of "
                    f"{_dur(cfg.threshold)} for more than {cfg.for_} (P95 estimated from the "
                    "histogram buckets).",
                    dashboard_uid=api,
                    topic="latency",
                    route=route,
                    **common,
                )
            )
    err = a.critical.error_rate
    rules.append(
        AlertRule(
            name="APIHighErrorRate",
            severity="critical",
            expr=f"{n.error_ratio}{only} > {_num(err.threshold)}\n{floor}",
            for_=err.for_,
            summary="{{ $labels.job }} answers more than "
            f"{humanize_percentage(err.threshold)} of requests with 5xx",
            description="{{ $value | humanizePercentage }} of the requests to job "
            "{{ $labels.job }} failed with a 5xx status over the last "
            f"{config.rate_window}, above the threshold of {humanize_percentage(err.threshold)} "
            f"for more than {err.for_}.",
            dashboard_uid=api,
            topic="errors",
            **common,
        )
    )
    raw = _sel(config, *scope.job_matchers)
    if "pool" in scope.signals:
        use = f"db_pool_connections_in_use{raw}\n  /\n  (db_pool_connections_max{raw} > 0)"
        rules.append(
            AlertRule(
                name="DBPoolExhausted",
                severity="critical",
                expr=f"(\n  {use}\n) >= 1\nor\n(\n  {use}\n  and\n"
                f"  db_pool_pending_acquires{raw} > 0\n)",
                for_=a.critical.pool_exhausted.for_,
                summary="Database pool {{ $labels.pool }} of {{ $labels.job }} is exhausted",
                description="Pool {{ $labels.pool }} of {{ $labels.job }} on "
                "{{ $labels.instance }} has {{ $value | humanizePercentage }} of its "
                "connections in use (100 %: every one), or callers wait for one, for more than "
                f"{a.critical.pool_exhausted.for_}.",
                dashboard_uid=DASHBOARD_DATABASE + scope.suffix,
                topic="pool",
                **common,
            )
        )
    tm = a.critical.target_missing
    up = f"up{raw}"
    rules.append(
        AlertRule(
            name="APITargetMissing",
            severity="critical",
            # up == 0: the scrape fails. The middle term: a job that had targets within the
            # lookback has none now (removed from discovery; up{} simply vanishes). absent():
            # nothing matches the selector at all, and nothing did within the lookback either.
            expr=f"{up} == 0\nor on (job)\n(\n"
            f"  group by (job) (max_over_time({up}[{tm.lookback}]))\n"
            f"  unless on (job)\n  group by (job) ({up})\n)"
            + (
                ""
                if _excludes_services(scope)
                else f"\nor\n(\n  absent({up})\n"
                f"  unless on ()\n  group(max_over_time({up}[{tm.lookback}]))\n)"
            ),
            for_=tm.for_,
            summary="{{ if $labels.instance }}Scrape target {{ $labels.instance }} of "
            "{{ $labels.job }} is down{{ else if $labels.job }}Job {{ $labels.job }} has no "
            "scrape target{{ else }}No scrape target matches the rules' selector{{ end }}",
            description="{{ if $labels.instance }}Prometheus cannot scrape "
            "{{ $labels.instance }} of job {{ $labels.job }} (up = {{ $value }}){{ else if "
            "$labels.job }}Job {{ $labels.job }} has no scrape target left: it is gone from "
            "service discovery or the scrape configuration{{ else }}Prometheus scrapes no "
            "target the rules select, and did not within the last "
            f"{tm.lookback}" + "{{ end }}, for more than " + f"{tm.for_}.",
            dashboard_uid=api,
            topic="target",
            **common,
        )
    )
    mem = a.warning.memory
    rules.append(
        AlertRule(
            name="HighMemoryUsage",
            severity="warning",
            expr=f"process_resident_memory_bytes{raw}\n/\n"
            f"(process_memory_limit_bytes{raw} > 0)\n> {_num(mem.threshold)}",
            for_=mem.for_,
            summary="{{ $labels.job }} on {{ $labels.instance }} uses more than "
            f"{humanize_percentage(mem.threshold)} of its memory limit",
            description="Process {{ $labels.instance }} of job {{ $labels.job }} has "
            "{{ $value | humanizePercentage }} of process_memory_limit_bytes resident, above "
            f"{humanize_percentage(mem.threshold)} for more than {mem.for_}.",
            dashboard_uid=DASHBOARD_CACHE_JOBS + scope.suffix,
            topic="memory",
            **common,
        )
    )
    if "cache" in scope.signals:
        cache = a.warning.cache_hit_rate
        rules.append(
            AlertRule(
                name="LowCacheHitRate",
                severity="warning",
                expr=f"{n.cache_hit_ratio}{only} < {_num(cache.threshold)}\n"
                f"and on (job, cache)\n{n.cache_requests} >= {_num(scope.min_request_rate)}",
                for_=cache.for_,
                summary="Cache {{ $labels.cache }} of {{ $labels.job }} hits less than "
                f"{humanize_percentage(cache.threshold)} of look-ups",
                description="Cache {{ $labels.cache }} of job {{ $labels.job }} answered "
                "{{ $value | humanizePercentage }} of look-ups over the last "
                f"{config.rate_window}, below {humanize_percentage(cache.threshold)} for more "
                f"than {cache.for_}.",
                dashboard_uid=DASHBOARD_CACHE_JOBS + scope.suffix,
                topic="cache",
                **common,
            )
        )
    deg = a.info.latency_degraded
    rules.append(
        AlertRule(
            name="APILatencyDegraded",
            severity="info",
            expr=f"{n.p95}{only}\n>\n{_num(deg.ratio)} * ({n.p95}{only} offset {deg.offset})"
            f"\n{floor}",
            for_=deg.for_,
            summary="P95 latency of {{ $labels.job }} is "
            f"{_num(deg.ratio)}x its value {deg.offset} ago",
            description="P95 request duration of job {{ $labels.job }} is "
            "{{ $value | humanizeDuration }}, more than " + f"{_num(deg.ratio)} times its value "
            f"{deg.offset} earlier, for more than {deg.for_}.",
            dashboard_uid=api,
            topic="degraded",
            **common,
        )
    )
    tr = a.info.unusual_traffic
    rules.append(
        AlertRule(
            name="UnusualTrafficPattern",
            severity="info",
            # The value is the current rate; the z-score condition filters. The floor applies
            # to now or the usual rate so that traffic dropping to nothing still alerts.
            expr=f"{n.requests}{only}\nand on (job)\n(\n  abs({n.requests} - {n.requests_avg})"
            f"\n  >\n  {_num(tr.zscore)} * {n.requests_stddev}\n)\nand on (job)\n(\n"
            f"  {n.requests} >= {_num(scope.min_request_rate)}\n  or\n"
            f"  {n.requests_avg} >= {_num(scope.min_request_rate)}\n)",
            for_=tr.for_,
            summary="Request rate of {{ $labels.job }} is unusual",
            description="Job {{ $labels.job }} serves {{ $value | humanize }} requests/s, more "
            f"than {_num(tr.zscore)} standard deviations away from its {tr.window} average, "
            f"for more than {tr.for_}.",
            dashboard_uid=api,
            topic="traffic",
            **common,
        )
    )
    return rules


def slo_windows(config: AlertsConfig, slo: Slo | None = None) -> list[tuple[str, str, float, str]]:
    """The burn-rate table scaled to the objective's window: (long, short, burn, severity).

    ``slo`` defaults to the config's. No window is shorter than ``rate_window``: a shorter rate
    would cover too few scrapes.
    """
    slo = slo or config.slo
    assert slo is not None
    scale = slo.window.seconds / (30 * 86400)
    floor = config.rate_window.seconds

    def scaled(seconds: float) -> str:
        return format_duration(max(round(seconds * scale), floor))

    return [(scaled(long), scaled(short), burn, sev) for long, short, burn, sev in SLO_BURN_TABLE]


def _slo_scopes(config: AlertsConfig) -> list[Scope]:
    return [scope for scope in config.scopes if scope.slo is not None]


def slo_rules(config: AlertsConfig) -> tuple[list[dict[str, Any]], list[AlertRule]]:
    """Error-ratio recording rules per window and the burn-rate alerts (page, ticket) of every
    scope with an objective."""
    scopes = _slo_scopes(config)
    every = {w for scope in scopes for row in slo_windows(config, scope.slo) for w in row[:2]}
    windows = sorted(every, key=lambda d: Duration(d).seconds)
    records: list[dict[str, Any]] = []
    count = "http_request_duration_seconds_count"
    for w in windows:
        requests = f"job:slo_requests:rate{w}"
        records.append({"record": requests, "expr": _sum_rate(config, count, "job", w)})
        records.append(
            {
                "record": f"job:slo_errors:ratio_rate{w}",
                "expr": f"(\n  {_sum_rate(config, count, 'job', w, _5XX)}\n  or\n"
                f"  0 * {requests}\n)\n/\n{requests}",
            }
        )
    alerts: list[AlertRule] = []
    for scope in scopes:
        alerts += _slo_alerts(config, scope, windows[0])
    return records, alerts


def _slo_alerts(config: AlertsConfig, scope: Scope, shortest: str) -> list[AlertRule]:
    slo = scope.slo
    assert slo is not None
    budget = 1 - slo.availability
    table = slo_windows(config, slo)
    only = _only(scope)
    alerts: list[AlertRule] = []
    for severity in ("critical", "warning"):
        rows = [row for row in table if row[3] == severity]
        terms = []
        # The traffic floor reads the shortest window's rate, recorded in this group: a rule
        # that reads another group's output may see the previous evaluation.
        for long, short, burn, _ in rows:
            limit = _num(burn * budget)
            terms.append(
                f"(\n  job:slo_errors:ratio_rate{long}{only} > {limit}\n  and on (job)\n"
                f"  job:slo_errors:ratio_rate{short} > {limit}\n  and on (job)\n"
                f"  job:slo_requests:rate{shortest} >= {_num(scope.min_request_rate)}\n)"
            )
        burns = " or ".join(f"{_num(r[2])}x over {r[0]}" for r in rows)
        alerts.append(
            AlertRule(
                name="APIErrorBudgetBurn",
                severity=severity,
                expr="\nor on (job)\n".join(terms),
                for_=_SLO_FOR[severity],
                summary="{{ $labels.job }} is burning its "
                f"{humanize_percentage(slo.availability)} availability error budget too fast",
                description="{{ $value | humanizePercentage }} of the requests to job "
                "{{ $labels.job }} failed over the long window, burning the "
                f"{slo.window} error budget of {humanize_percentage(budget)} at {burns} the "
                "sustainable rate.",
                dashboard_uid=DASHBOARD_API + scope.suffix,
                topic="slo",
                service=scope.service,
                links=scope.links,
            )
        )
    return alerts


def all_alerts(config: AlertsConfig) -> list[AlertRule]:
    """Every alerting rule the config produces, SLO alerts included."""
    rules = alert_rules(config)
    if _slo_scopes(config):
        rules += slo_rules(config)[1]
    return rules


def rule_groups(config: AlertsConfig) -> dict[str, Any]:
    """The document of ``hlthz.rules.yml``: ``{"groups": [...]}``."""
    # Rules in one group run in order at one timestamp, so alerts see the recording rules of
    # the same evaluation; across groups they could lag one interval. Only the slow-moving
    # baselines live in a group of their own, evaluated less often.
    groups: list[dict[str, Any]] = [
        {
            "name": "hlthz-api",
            "rules": recording_rules(config) + [r.to_rule(config) for r in alert_rules(config)],
        },
        {
            "name": "hlthz-baselines",
            "interval": str(baseline_interval(config)),
            "rules": baseline_rules(config),
        },
    ]
    if _slo_scopes(config):
        records, alerts = slo_rules(config)
        groups.append(
            {
                "name": "hlthz-slo",
                "rules": records + [r.to_rule(config) for r in alerts],
            }
        )
    return {"groups": groups}
