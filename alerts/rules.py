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

from hlthz.alerts.config import AlertsConfig, Duration, format_duration
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

    def to_rule(self, config: AlertsConfig) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if Duration(self.for_).seconds > 0:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": config.links.runbook(self.name),
            "dashboard_url": config.links.dashboard(self.dashboard_uid),
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


def baseline_interval(config: AlertsConfig) -> Duration:
    """Evaluation interval of the baseline group: week-long statistics need a point every half
    rate window at most (capped at 2m, well inside Prometheus' 5m staleness lookback), and
    never more often than Prometheus scrapes."""
    seconds = max(config.scrape_interval.seconds, min(120.0, config.rate_window.seconds / 2))
    return Duration.from_seconds(seconds)


def _sel(config: AlertsConfig, *matchers: str) -> str:
    parts = [*matchers, *([config.selector] if config.selector else [])]
    return "{" + ", ".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    return f"{value:.6g}"


def _dur(seconds: float) -> str:
    return humanize_duration(seconds)


def recording_rules(config: AlertsConfig) -> list[dict[str, Any]]:
    """The per-job request, error, latency and cache series every alert and dashboard reads."""
    n = Names(config)
    w = config.rate_window
    return [
        {
            "record": n.requests,
            "expr": f"sum by (job) (rate(http_request_duration_seconds_count{_sel(config)}[{w}]))",
        },
        {
            "record": n.errors,
            "expr": "sum by (job) (rate(http_request_duration_seconds_count"
            f"{_sel(config, _5XX)}[{w}]))",
        },
        {
            # A job with no 5xx series yet has an error ratio of 0, not none.
            "record": n.error_ratio,
            "expr": f"(\n  {n.errors}\n  or\n  0 * {n.requests}\n)\n/\n{n.requests}",
        },
        {
            "record": n.p95,
            "expr": "histogram_quantile(\n  0.95,\n  sum by (job, le) (rate("
            f"http_request_duration_seconds_bucket{_sel(config)}[{w}]))\n)",
        },
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


def baseline_rules(config: AlertsConfig) -> list[dict[str, Any]]:
    """Week-long mean and standard deviation of the request rate, for the z-score alert."""
    n = Names(config)
    window = config.alerts.info.unusual_traffic.window
    return [
        {"record": n.requests_avg, "expr": f"avg_over_time({n.requests}[{window}])"},
        {"record": n.requests_stddev, "expr": f"stddev_over_time({n.requests}[{window}])"},
    ]


def alert_rules(config: AlertsConfig) -> list[AlertRule]:
    """Every alert of docs/alerts.md, in a fixed order."""
    n = Names(config)
    a = config.alerts
    floor = f"and on (job)\n{n.requests} >= {_num(config.min_request_rate)}"
    rules: list[AlertRule] = []
    for severity, cfg in (("critical", a.critical.latency_p95), ("warning", a.warning.latency_p95)):
        rules.append(
            AlertRule(
                name="APIHighLatencyP95",
                severity=severity,
                expr=f"{n.p95} > {_num(cfg.threshold)}\n{floor}",
                for_=cfg.for_,
                summary="P95 latency of {{ $labels.job }} is above "
                f"{_dur(cfg.threshold)} ({severity})",
                description="P95 request duration of job {{ $labels.job }} is "
                "{{ $value | humanizeDuration }}, above the " + severity + " threshold of "
                f"{_dur(cfg.threshold)} for more than {cfg.for_}.",
                dashboard_uid=DASHBOARD_API,
                topic="latency",
            )
        )
    err = a.critical.error_rate
    rules.append(
        AlertRule(
            name="APIHighErrorRate",
            severity="critical",
            expr=f"{n.error_ratio} > {_num(err.threshold)}\n{floor}",
            for_=err.for_,
            summary="{{ $labels.job }} answers more than "
            f"{humanize_percentage(err.threshold)} of requests with 5xx",
            description="{{ $value | humanizePercentage }} of the requests to job "
            "{{ $labels.job }} failed with a 5xx status over the last "
            f"{config.rate_window}, above the threshold of {humanize_percentage(err.threshold)} "
            f"for more than {err.for_}.",
            dashboard_uid=DASHBOARD_API,
            topic="errors",
        )
    )
    use = (
        f"db_pool_connections_in_use{_sel(config)}\n  /\n"
        f"  (db_pool_connections_max{_sel(config)} > 0)"
    )
    rules.append(
        AlertRule(
            name="DBPoolExhausted",
            severity="critical",
            expr=f"(\n  {use}\n) >= 1\nor\n(\n  {use}\n  and\n"
            f"  db_pool_pending_acquires{_sel(config)} > 0\n)",
            for_=a.critical.pool_exhausted.for_,
            summary="Database pool {{ $labels.pool }} of {{ $labels.job }} is exhausted",
            description="Pool {{ $labels.pool }} of {{ $labels.job }} on {{ $labels.instance }} "
            "has {{ $value | humanizePercentage }} of its connections in use and/or callers "
            f"waiting for one, for more than {a.critical.pool_exhausted.for_}.",
            dashboard_uid=DASHBOARD_DATABASE,
            topic="pool",
        )
    )
    tm = a.critical.target_missing
    up = f"up{_sel(config)}"
    rules.append(
        AlertRule(
            name="APITargetMissing",
            severity="critical",
            # up == 0: the scrape fails. The middle term: a job that had targets within the
            # lookback has none now (removed from discovery; up{} simply vanishes). absent():
            # nothing matches the selector at all, and nothing did within the lookback either.
            expr=f"{up} == 0\nor on (job)\n(\n"
            f"  group by (job) (max_over_time({up}[{tm.lookback}]))\n"
            f"  unless on (job)\n  group by (job) ({up})\n)\nor\n(\n  absent({up})\n"
            f"  unless on ()\n  group(max_over_time({up}[{tm.lookback}]))\n)",
            for_=tm.for_,
            summary="{{ if $labels.job }}A scrape target of {{ $labels.job }} is down or "
            "missing{{ else }}No scrape target matches the rules' selector{{ end }}",
            description="{{ if $labels.instance }}Target {{ $labels.instance }} of job "
            "{{ $labels.job }} is down{{ else if $labels.job }}Job {{ $labels.job }} has no "
            "scrape target{{ else }}Prometheus scrapes no target the rules select{{ end }} "
            "(up = {{ $value }}) for more than " + f"{tm.for_}.",
            dashboard_uid=DASHBOARD_API,
            topic="target",
        )
    )
    mem = a.warning.memory
    rules.append(
        AlertRule(
            name="HighMemoryUsage",
            severity="warning",
            expr=f"process_resident_memory_bytes{_sel(config)}\n/\n"
            f"(process_memory_limit_bytes{_sel(config)} > 0)\n> {_num(mem.threshold)}",
            for_=mem.for_,
            summary="{{ $labels.job }} on {{ $labels.instance }} uses more than "
            f"{humanize_percentage(mem.threshold)} of its memory limit",
            description="Process {{ $labels.instance }} of job {{ $labels.job }} has "
            "{{ $value | humanizePercentage }} of process_memory_limit_bytes resident, above "
            f"{humanize_percentage(mem.threshold)} for more than {mem.for_}.",
            dashboard_uid=DASHBOARD_CACHE_JOBS,
            topic="memory",
        )
    )
    cache = a.warning.cache_hit_rate
    rules.append(
        AlertRule(
            name="LowCacheHitRate",
            severity="warning",
            expr=f"{n.cache_hit_ratio} < {_num(cache.threshold)}\nand on (job, cache)\n"
            f"{n.cache_requests} >= {_num(config.min_request_rate)}",
            for_=cache.for_,
            summary="Cache {{ $labels.cache }} of {{ $labels.job }} hits less than "
            f"{humanize_percentage(cache.threshold)} of look-ups",
            description="Cache {{ $labels.cache }} of job {{ $labels.job }} answered "
            "{{ $value | humanizePercentage }} of look-ups over the last "
            f"{config.rate_window}, below {humanize_percentage(cache.threshold)} for more "
            f"than {cache.for_}.",
            dashboard_uid=DASHBOARD_CACHE_JOBS,
            topic="cache",
        )
    )
    deg = a.info.latency_degraded
    rules.append(
        AlertRule(
            name="APILatencyDegraded",
            severity="info",
            expr=f"{n.p95}\n>\n{_num(deg.ratio)} * ({n.p95} offset {deg.offset})\n{floor}",
            for_=deg.for_,
            summary="P95 latency of {{ $labels.job }} is "
            f"{_num(deg.ratio)}x its value {deg.offset} ago",
            description="P95 request duration of job {{ $labels.job }} is "
            "{{ $value | humanizeDuration }}, more than " + f"{_num(deg.ratio)} times its value "
            f"{deg.offset} earlier, for more than {deg.for_}.",
            dashboard_uid=DASHBOARD_API,
            topic="degraded",
        )
    )
    tr = a.info.unusual_traffic
    rules.append(
        AlertRule(
            name="UnusualTrafficPattern",
            severity="info",
            # The value is the current rate; the z-score condition filters. The floor applies
            # to now or the usual rate so that traffic dropping to nothing still alerts.
            expr=f"{n.requests}\nand on (job)\n(\n  abs({n.requests} - {n.requests_avg})\n  >\n"
            f"  {_num(tr.zscore)} * {n.requests_stddev}\n)\nand on (job)\n(\n"
            f"  {n.requests} >= {_num(config.min_request_rate)}\n  or\n"
            f"  {n.requests_avg} >= {_num(config.min_request_rate)}\n)",
            for_=tr.for_,
            summary="Request rate of {{ $labels.job }} is unusual",
            description="Job {{ $labels.job }} serves {{ $value | humanize }} requests/s, more "
            f"than {_num(tr.zscore)} standard deviations away from its {tr.window} average, "
            f"for more than {tr.for_}.",
            dashboard_uid=DASHBOARD_API,
            topic="traffic",
        )
    )
    return rules


def slo_windows(config: AlertsConfig) -> list[tuple[str, str, float, str]]:
    """The burn-rate table scaled to the objective's window: (long, short, burn, severity).

    No window is shorter than ``rate_window``: a shorter rate would cover too few scrapes.
    """
    assert config.slo is not None
    scale = config.slo.window.seconds / (30 * 86400)
    floor = config.rate_window.seconds

    def scaled(seconds: float) -> str:
        return format_duration(max(round(seconds * scale), floor))

    return [(scaled(long), scaled(short), burn, sev) for long, short, burn, sev in SLO_BURN_TABLE]


def slo_rules(config: AlertsConfig) -> tuple[list[dict[str, Any]], list[AlertRule]]:
    """Error-ratio recording rules per window and the two burn-rate alerts (page, ticket)."""
    assert config.slo is not None
    slo = config.slo
    budget = 1 - slo.availability
    table = slo_windows(config)
    windows = sorted({w for row in table for w in row[:2]}, key=lambda d: Duration(d).seconds)
    records: list[dict[str, Any]] = []
    for w in windows:
        requests = f"job:slo_requests:rate{w}"
        records.append(
            {
                "record": requests,
                "expr": "sum by (job) (rate(http_request_duration_seconds_count"
                f"{_sel(config)}[{w}]))",
            }
        )
        records.append(
            {
                "record": f"job:slo_errors:ratio_rate{w}",
                "expr": "(\n  sum by (job) (rate(http_request_duration_seconds_count"
                f"{_sel(config, _5XX)}[{w}]))\n  or\n  0 * {requests}\n)\n"
                f"/\n{requests}",
            }
        )
    alerts: list[AlertRule] = []
    for severity in ("critical", "warning"):
        rows = [row for row in table if row[3] == severity]
        terms = []
        # The traffic floor reads the shortest window's rate, recorded in this group: a rule
        # that reads another group's output may see the previous evaluation.
        for long, short, burn, _ in rows:
            limit = _num(burn * budget)
            terms.append(
                f"(\n  job:slo_errors:ratio_rate{long} > {limit}\n  and on (job)\n"
                f"  job:slo_errors:ratio_rate{short} > {limit}\n  and on (job)\n"
                f"  job:slo_requests:rate{windows[0]} >= {_num(config.min_request_rate)}\n)"
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
                dashboard_uid=DASHBOARD_API,
                topic="slo",
            )
        )
    return records, alerts


def all_alerts(config: AlertsConfig) -> list[AlertRule]:
    """Every alerting rule the config produces, SLO alerts included."""
    rules = alert_rules(config)
    if config.slo is not None:
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
    if config.slo is not None:
        records, alerts = slo_rules(config)
        groups.append(
            {
                "name": "hlthz-slo",
                "rules": records + [r.to_rule(config) for r in alerts],
            }
        )
    return {"groups": groups}
