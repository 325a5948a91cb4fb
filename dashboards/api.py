"""Dashboard 1, ``hlthz-api``: the RED view (rate, errors, duration) of every scraped API."""

from __future__ import annotations

from grafanalib.core import Dashboard, Panel

from hlthz.dashboards.common import (
    dashboard,
    error_steps,
    latency_steps,
    matchers,
    quoted,
    standard_variables,
)
from hlthz.dashboards.exprs import quantile, share, sum_rate
from hlthz.dashboards.panels import (
    GREEN,
    ORANGE,
    RED,
    column,
    heatmap,
    layout,
    query,
    stat,
    steps,
    table,
    targets,
    timeseries,
)
from hlthz.dashboards.settings import DashboardSettings

UID = "hlthz-api"
ALERTS = (
    "APIHighLatencyP95",
    "APIHighErrorRate",
    "APITargetMissing",
    "APILatencyDegraded",
    "UnusualTrafficPattern",
)
_REQ = "http_request_duration_seconds"
_5XX = 'status_code=~"5.."'


def build(s: DashboardSettings) -> Dashboard:
    """The API overview dashboard for the thresholds in ``s``."""
    m = matchers(s)
    mr = matchers(s, route=True)
    warn, crit = s.latency_warning, s.latency_critical
    latency_runbook = [("Runbook: APIHighLatencyP95", s.runbook("APIHighLatencyP95"))]
    error_runbook = [("Runbook: APIHighErrorRate", s.runbook("APIHighErrorRate"))]

    overview = [
        (
            stat(
                "Request rate",
                "Requests per second served by the selected jobs. Good: steady and close to "
                "the usual level for this time of day; a sudden drop or spike is worth a look "
                "(UnusualTrafficPattern).",
                sum_rate(f"{_REQ}_count", m),
                unit="reqps",
                links=[("Runbook: UnusualTrafficPattern", s.runbook("UnusualTrafficPattern"))],
            ),
            5,
            4,
        ),
        (
            stat(
                "5xx share",
                f"Share of responses with a 5xx status. Good: 0 %. APIHighErrorRate pages "
                f"above {s.error_rate:.2%}.",
                share(f"{_REQ}_count", m, _5XX),
                unit="percentunit",
                decimals=2,
                thresholds=error_steps(s),
                links=error_runbook,
            ),
            5,
            4,
        ),
        (
            stat(
                "P95 latency",
                f"95 % of requests finished faster than this. Good: under {warn:g} s "
                f"(warning above {warn:g} s, critical above {crit:g} s).",
                quantile(0.95, _REQ, m),
                unit="s",
                thresholds=latency_steps(s),
                links=latency_runbook,
            ),
            5,
            4,
        ),
        (
            stat(
                "In-flight requests",
                "Requests being served right now. Good: low and flat; a climb means requests "
                "queue behind something slow (database pool, upstream call).",
                f"sum(http_requests_in_flight{{{m}}})",
                unit="short",
            ),
            4,
            4,
        ),
        (
            stat(
                "Targets up",
                "Share of the selected scrape targets that answered the last scrape. Good: "
                "100 %; below that APITargetMissing fires and every other panel is partial.",
                f"sum(up{{{m}}}) / count(up{{{m}}})",
                unit="percentunit",
                thresholds=steps(RED, (1.0, GREEN)),
                links=[("Runbook: APITargetMissing", s.runbook("APITargetMissing"))],
            ),
            5,
            4,
        ),
    ]

    traffic = [
        (
            timeseries(
                "Request rate by route",
                "Requests per second per route template. Good: the mix you expect; one route "
                "dominating or a new route appearing often explains a latency change.",
                targets((sum_rate(f"{_REQ}_count", mr, "route"), "{{route}}")),
                unit="reqps",
                stack=True,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "5xx share by route",
                f"Share of each route's responses with a 5xx status. Good: 0 everywhere; the "
                f"dashed line is the {s.error_rate:.2%} that pages (APIHighErrorRate).",
                targets((share(f"{_REQ}_count", mr, _5XX, "route"), "{{route}}")),
                unit="percentunit",
                thresholds=error_steps(s),
                links=error_runbook,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Responses by status code",
                "Responses per second by HTTP status. Good: 2xx and 3xx; a 4xx surge points at "
                "clients, a 5xx one at the service.",
                targets((sum_rate(f"{_REQ}_count", mr, "status_code"), "{{status_code}}")),
                unit="reqps",
                stack=True,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "In-flight requests by method",
                "Concurrent requests per HTTP method. Good: a small, flat number; growth with "
                "flat traffic means each request waits longer.",
                targets((f"sum by (method) (http_requests_in_flight{{{m}}})", "{{method}}")),
                unit="short",
            ),
            12,
            8,
        ),
    ]

    latency = [
        (
            timeseries(
                "Latency P50 / P95 / P99 by route",
                f"Request duration percentiles per route. Good: P95 under {warn:g} s. The "
                f"dashed lines are the warning ({warn:g} s) and critical ({crit:g} s) "
                "thresholds of APIHighLatencyP95. A P99 far above P95 means a few very slow "
                "requests (locks, cold caches, N+1 queries).",
                targets(
                    (quantile(0.5, _REQ, mr, "route"), "p50 {{route}}"),
                    (quantile(0.95, _REQ, mr, "route"), "p95 {{route}}"),
                    (quantile(0.99, _REQ, mr, "route"), "p99 {{route}}"),
                ),
                unit="s",
                thresholds=latency_steps(s),
                links=latency_runbook,
                fill=0,
            ),
            24,
            9,
        ),
        (
            heatmap(
                title="Latency distribution",
                description="How many requests fell in each duration bucket over time. Good: "
                "one dense band low on the axis; a second band higher up is a slow path worth "
                "finding, even when P95 still looks fine.",
                target=query(
                    sum_rate(f"{_REQ}_bucket", mr, "le", fn="increase"), "{{le}}", fmt="heatmap"
                ),
                unit="s",
            ),
            12,
            9,
        ),
        (
            table(
                title="Slowest routes",
                description=f"Routes ranked by P95 latency now, with P99 and request rate. "
                f"Good: every P95 under {warn:g} s; fix the top row first when it also has "
                f"a high rate.",
                queries=[
                    query(
                        f"topk(10, {quantile(0.95, _REQ, m, 'route')})",
                        ref="A",
                        instant=True,
                        fmt="table",
                    ),
                    query(quantile(0.99, _REQ, m, "route"), ref="B", instant=True, fmt="table"),
                    query(
                        sum_rate(f"{_REQ}_count", m, "route"),
                        ref="C",
                        instant=True,
                        fmt="table",
                    ),
                ],
                transformations=[
                    {"id": "joinByField", "options": {"byField": "route", "mode": "inner"}},
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {
                                "Time": True,
                                "Time 1": True,
                                "Time 2": True,
                                "Time 3": True,
                            },
                            "renameByName": {
                                "Value #A": "P95",
                                "Value #B": "P99",
                                "Value #C": "Requests/s",
                            },
                        },
                    },
                ],
                unit="short",
                sort_by="P95",
                overrides=[
                    column("P95", unit="s", thresholds=latency_steps(s), colored=True),
                    column("P99", unit="s"),
                    column("Requests/s", unit="reqps"),
                ],
            ),
            12,
            9,
        ),
    ]

    sections = [("Overview", overview), ("Traffic and errors", traffic), ("Latency", latency)]
    if s.route_latency:
        sections.append(("Routes with their own thresholds", _route_panels(s)))
    return dashboard(
        uid=s.uid(UID),
        title=s.title("HLTHZ / API overview"),
        description="Rate, errors and duration of every instrumented API, with the thresholds "
        "of the alerts that page on them.",
        panels=layout(sections),
        variables=standard_variables(s, f"{_REQ}_count", route=True),
        settings=s,
        alerts=ALERTS,
    )


def _route_panels(s: DashboardSettings) -> list[tuple[Panel, int, int]]:
    """One P95 panel per route with its own thresholds, drawing that route's lines."""
    panels: list[tuple[Panel, int, int]] = []
    for key, method, route, warn, crit in s.route_latency:
        own = [f"route={quoted(route)}", *([f"method={quoted(method)}"] if method else [])]
        m = matchers(s, *own, exclusions=False)
        panels.append(
            (
                timeseries(
                    f"P95 latency of {key}",
                    f"95 % of the requests to {key} finished faster than this. This route has "
                    f"thresholds of its own: warning above {warn:g} s, critical above {crit:g} s "
                    "(APIHighLatencyP95 with its route label).",
                    targets((quantile(0.95, _REQ, m, "job"), "{{job}}")),
                    unit="s",
                    thresholds=steps(GREEN, (warn, ORANGE), (crit, RED)),
                    links=[("Runbook: APIHighLatencyP95", s.runbook("APIHighLatencyP95"))],
                    fill=0,
                ),
                12,
                8,
            )
        )
    return panels
