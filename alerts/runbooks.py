"""Markdown runbooks, one per alert name, rendered from ``templates/runbook.md.j2``.

Each runbook says what the alert means, starts with the query that finds the slow or failing
route, which dashboard panels to open, and the likely causes (those the app's signals make
possible) in the order HLTHZ's demo found them (slow queries and N+1, missing indexes, pool
exhaustion, cache misses, synchronous side work), each with the PromQL to check it and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jinja2

from hlthz.alerts.config import AlertsConfig, grafana_link
from hlthz.alerts.humanize import humanize_duration, humanize_percentage
from hlthz.alerts.rules import (
    DASHBOARD_API,
    DASHBOARD_CACHE_JOBS,
    DASHBOARD_DATABASE,
    AlertRule,
    Names,
)

_STORY = ["slow_queries", "indexes", "pool", "cache", "side_work"]

# topic -> (meaning, causes in order, [(dashboard uid, panels to open)])
_TOPICS: dict[str, tuple[str, list[str], list[tuple[str, str]]]] = {
    "latency": (
        "One request in twenty to the job takes longer than the threshold. Users feel it, and "
        "slow requests hold workers and connections, so it tends to spread to every route.",
        [*_STORY, "deploy"],
        [
            (DASHBOARD_API, "P95 latency, Latency P50 / P95 / P99 by route, Slowest routes"),
            (
                DASHBOARD_DATABASE,
                "Queries per request by route, N+1 detections, Query P95 by query type, "
                "Pool connections in use / max",
            ),
            (DASHBOARD_CACHE_JOBS, "Cache hit share by cache, Queue depth"),
        ],
    ),
    "degraded": (
        "Latency is well below the paging thresholds but clearly worse than at the same time "
        "earlier: a slow regression, usually a release, caught before it becomes an incident.",
        ["deploy", *_STORY],
        [
            (DASHBOARD_API, "Latency P50 / P95 / P99 by route (compare with the baseline period)"),
            (DASHBOARD_DATABASE, "Queries per request by route, Query P95 by query type"),
        ],
    ),
    "errors": (
        "A share of requests fails with a 5xx status: clients see errors now.",
        ["errors", "pool", "slow_queries", "deploy"],
        [
            (DASHBOARD_API, "5xx share, 5xx share by route, Responses by status code"),
            (DASHBOARD_DATABASE, "Pool utilisation, Pending acquires, Pool acquire timeouts"),
        ],
    ),
    "pool": (
        "Every database connection of the pool is checked out, or callers wait for one. "
        "Requests queue behind the pool: latency rises everywhere and timeouts become 5xx.",
        ["pool", "slow_queries", "indexes", "side_work"],
        [
            (
                DASHBOARD_DATABASE,
                "Pool connections in use / max, Pending acquires, Pool acquire timeouts, "
                "Query P95 by query type",
            ),
            (DASHBOARD_API, "P95 latency, 5xx share"),
        ],
    ),
    "memory": (
        "The process uses most of the memory it may use; past the limit it is killed "
        "(out-of-memory) and its in-flight requests fail.",
        ["memory", "cache", "deploy"],
        [(DASHBOARD_CACHE_JOBS, "Memory share of limit, Resident memory")],
    ),
    "cache": (
        "Few cache look-ups find their key, so the work the cache should save reaches the "
        "database: expect higher query rates and latency.",
        ["cache", "slow_queries"],
        [
            (DASHBOARD_CACHE_JOBS, "Cache hit share by cache, Cache look-ups and errors"),
            (DASHBOARD_DATABASE, "Query rate by query type, Query P95 by query type"),
        ],
    ),
    "target": (
        "Prometheus cannot scrape the API: the process is down, unreachable, or gone from "
        "service discovery. Every other alert of the job is blind until it is back.",
        ["target", "memory", "deploy"],
        [(DASHBOARD_API, "Targets up, Request rate")],
    ),
    "traffic": (
        "The request rate is far from its usual range (a z-score over the baseline window): a "
        "spike may overload the API, a drop often means clients cannot reach it.",
        ["traffic", "deploy"],
        [(DASHBOARD_API, "Request rate, Request rate by route, Responses by status code")],
    ),
    "slo": (
        "Failed requests consume the availability objective's error budget faster than it "
        "allows: at this burn rate the budget runs out before the window ends.",
        ["errors", "pool", "slow_queries", "deploy"],
        [(DASHBOARD_API, "5xx share, 5xx share by route, Responses by status code")],
    ),
}

_ROUTING = {
    "critical": "pages on-call",
    "warning": "opens a ticket",
    "info": "low-noise channel",
}


def _condition(rule: AlertRule, config: AlertsConfig) -> str:
    scope = next(sc for sc in config.scopes if sc.service == rule.service)
    a = scope.alerts
    if rule.route is not None and rule.route.latency is not None:
        critical, warning = rule.route.latency
        chosen = critical if rule.severity == "critical" else warning
        return f"P95 request duration above {humanize_duration(chosen.threshold)}"
    match rule.name, rule.severity:
        case "APIHighLatencyP95", "critical":
            return (
                f"P95 request duration above {humanize_duration(a.critical.latency_p95.threshold)}"
            )
        case "APIHighLatencyP95", _:
            return (
                f"P95 request duration above {humanize_duration(a.warning.latency_p95.threshold)}"
            )
        case "APIHighErrorRate", _:
            return (
                f"more than {humanize_percentage(a.critical.error_rate.threshold)} of requests 5xx"
            )
        case "DBPoolExhausted", _:
            return "every pool connection in use, or callers waiting for one"
        case "APITargetMissing", _:
            return (
                "a target's `up` is 0, or a job seen within "
                f"{a.critical.target_missing.lookback} has no target"
            )
        case "HighMemoryUsage", _:
            limit = humanize_percentage(a.warning.memory.threshold)
            return f"resident memory above {limit} of the limit"
        case "LowCacheHitRate", _:
            return f"cache hits below {humanize_percentage(a.warning.cache_hit_rate.threshold)}"
        case "APILatencyDegraded", _:
            d = a.info.latency_degraded
            return f"P95 more than {d.ratio:g} times its value {d.offset} earlier"
        case "UnusualTrafficPattern", _:
            t = a.info.unusual_traffic
            return (
                f"request rate more than {t.zscore:g} standard deviations from its {t.window} mean"
            )
        case "APIErrorBudgetBurn", "critical":
            return (
                "error budget burning 14.4x (1h window) or 6x (6h) too fast, windows scaled to "
                "the SLO window"
            )
        case "APIErrorBudgetBurn", _:
            return (
                "error budget burning 3x (1d window) or 1x (3d) too fast, windows scaled to the "
                "SLO window"
            )
    raise AssertionError(rule.name)


def _scope_of(rule: AlertRule) -> str:
    where = f" on `{rule.service}`" if rule.service else ""
    if rule.route is not None:
        return f" for route `{rule.route.key}`" + (f" of `{rule.service}`" if rule.service else "")
    return where


def _find(topic: str, config: AlertsConfig) -> tuple[str, str] | None:
    """The query that finds the slow or failing route, for the topics that have one."""
    w = config.rate_window
    tail = config.matchers
    if topic in ("latency", "degraded"):
        return (
            "P95 per route of the alert's job, slowest first (put the job of the alert in the "
            "matcher):",
            "topk(5, histogram_quantile(0.95, sum by (job, method, route, le) "
            f'(rate(http_request_duration_seconds_bucket{{job="JOB"{tail}}}[{w}]))))',
        )
    if topic in ("errors", "slo"):
        return (
            "5xx responses per second per route of the alert's job, most first (put the job of "
            "the alert in the matcher):",
            "topk(5, sum by (job, method, route, status_code) "
            f'(rate(http_request_duration_seconds_count{{job="JOB", status_code=~"5.."{tail}}}'
            f"[{w}])))",
        )
    return None


_CAUSE_SIGNAL = {
    "slow_queries": "database",
    "indexes": "database",
    "pool": "pool",
    "cache": "cache",
}


def _shown(uid: str, panels: str, signals: tuple[str, ...]) -> bool:
    """Whether the dashboard panels exist for these signals (the database dashboard needs a
    database or pool, cache and queue panels a cache or jobs)."""
    if uid == DASHBOARD_DATABASE:
        return bool({"database", "pool"} & set(signals))
    if uid == DASHBOARD_CACHE_JOBS and ("Cache" in panels or "Queue" in panels):
        return bool({"cache", "jobs"} & set(signals))
    return True


_EMPTY_PARAMETER = re.compile(r"([?&])[\w.-]+=(?=&|$)")


def _plain_link(url: str) -> str:
    """A dashboard link for a Markdown page: alert templates dropped, then empty parameters."""
    url = grafana_link(url, variables=())
    url = _EMPTY_PARAMETER.sub(lambda m: m.group(1), url)
    return url.rstrip("?&").replace("?&", "?")


def render_runbooks(config: AlertsConfig, alerts: Sequence[AlertRule]) -> dict[str, str]:
    """``{"<AlertName>.md": markdown}`` for every alert name in ``alerts``.

    Causes needing a signal (slow queries: ``database``...) appear only when some scope emits
    it, marked with the services that do when not every scope does.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hlthz.alerts", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    template = env.get_template("runbook.md.j2")
    by_name: dict[str, list[AlertRule]] = {}
    for rule in alerts:
        by_name.setdefault(rule.name, []).append(rule)
    sel = "{" + config.selector + "}" if config.selector else ""
    signals = config.all_signals
    only = {}
    for signal in ("database", "pool", "cache", "jobs"):
        having = [s for s in config.scopes if signal in s.signals]
        if having and len(having) < len(config.scopes):
            names = ", ".join(
                f"`{s.service}`" if s.service else "jobs without a services entry" for s in having
            )
            only[signal] = f"\nOnly for {names}: the jobs that emit {signal} metrics.\n"
        else:
            only[signal] = ""
    only.update({cause: only[sig] for cause, sig in _CAUSE_SIGNAL.items()})
    out = {}
    for name, rules in by_name.items():
        meaning, causes, open_first = _TOPICS[rules[0].topic]
        causes = [
            c
            for c in causes
            if _CAUSE_SIGNAL.get(c, "database") in signals or c not in _CAUSE_SIGNAL
        ]
        open_first = [(uid, panels) for uid, panels in open_first if _shown(uid, panels, signals)]
        uids = {uid for uid, _ in open_first}
        text = template.render(
            alert=name,
            rules=rules,
            source=config.source.name,
            cfg=config,
            names=Names(config),
            meaning=meaning,
            causes=causes,
            open_first=open_first,
            dashboards={uid: _plain_link(config.links.dashboard(uid)) for uid in uids},
            conditions=[(r, _condition(r, config)) for r in rules],
            scope_of=_scope_of,
            routing=_ROUTING,
            sel=sel,
            sel_tail=config.matchers,
            find=_find(rules[0].topic, config),
            services=[s.name for s in config.services],
            signals=signals,
            only=only,
        )
        out[f"{name}.md"] = _squeeze_blank_lines(text)
    return out


def _squeeze_blank_lines(text: str) -> str:
    lines: list[str] = []
    for line in text.splitlines():
        if not line.strip() and lines and not lines[-1].strip():
            continue
        lines.append(line.rstrip())
    return "\n".join(lines).strip() + "\n"
