"""Dashboard 4, ``hlthz-release``: a release validated by replaying captured traffic.

It reads the metrics ``hlthz replay run --metrics-port`` exports while it runs. Latency here is
measured from each request's *scheduled* send time, so a slow target cannot hide its slowness
by slowing the replayer down (coordinated omission); service time is measured from the actual
send, and the gap between the two is queueing in the replayer or the target.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from hlthz.dashboards.common import (
    dashboard,
    datasource_variable,
    error_steps,
    latency_steps,
    query_variable,
)
from hlthz.dashboards.exprs import quantile, share, sum_rate
from hlthz.dashboards.panels import (
    column,
    layout,
    query,
    stat,
    table,
    targets,
    timeseries,
)
from hlthz.dashboards.settings import DashboardSettings

UID = "hlthz-release"
ALERTS = ("APIHighErrorRate", "APIHighLatencyP95")
_REQUESTS = "hlthz_replay_requests_total"
_LATENCY = "hlthz_replay_latency_seconds"
_SERVICE = "hlthz_replay_service_time_seconds"
_FAILED = 'status_class=~"5xx|error"'


def build(s: DashboardSettings) -> Dashboard:
    """The release validation dashboard, with the API's latency and error thresholds."""
    m = 'job=~"$job", instance=~"$instance", run=~"$run"'
    mr = f'{m}, route=~"$route"'
    warn, crit = s.latency_warning, s.latency_critical
    run_filter = 'job=~"$job", instance=~"$instance"'

    summary = [
        (
            stat(
                "Replayed request rate",
                "Requests per second the replay sends. Good: the rate you asked for (the "
                "capture's pace times --speed, or --rate).",
                sum_rate(_REQUESTS, m),
                unit="reqps",
            ),
            6,
            4,
        ),
        (
            stat(
                "Error share",
                f"Share of replayed requests that failed (transport error or 5xx). Good: 0 %; "
                f"the gate and APIHighErrorRate use {s.error_rate:.2%}.",
                share(_REQUESTS, m, _FAILED),
                unit="percentunit",
                decimals=2,
                thresholds=error_steps(s),
            ),
            6,
            4,
        ),
        (
            stat(
                "P95 latency",
                f"95 % of replayed requests completed within this, counted from their "
                f"scheduled send time. Good: under {warn:g} s.",
                quantile(0.95, _LATENCY, m),
                unit="s",
                thresholds=latency_steps(s),
            ),
            6,
            4,
        ),
        (
            stat(
                "In flight",
                "Replayed requests awaiting a response. Good: small; a growing number means "
                "the target is slower than the traffic arrives.",
                f"sum(hlthz_replay_in_flight{{{m}}})",
                unit="short",
            ),
            6,
            4,
        ),
    ]

    detail = [
        (
            timeseries(
                "Latency P50 / P95 / P99",
                f"Replayed request latency from the scheduled send time. Good: P95 under "
                f"{warn:g} s (dashed: warning {warn:g} s, critical {crit:g} s).",
                targets(
                    (quantile(0.5, _LATENCY, mr), "p50"),
                    (quantile(0.95, _LATENCY, mr), "p95"),
                    (quantile(0.99, _LATENCY, mr), "p99"),
                ),
                unit="s",
                thresholds=latency_steps(s),
                fill=0,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Latency vs service time P95",
                "P95 from the scheduled time against P95 from the actual send. Good: the two "
                "lines overlap; a gap is time spent waiting before the request went out.",
                targets(
                    (quantile(0.95, _LATENCY, mr), "latency p95"),
                    (quantile(0.95, _SERVICE, mr), "service time p95"),
                ),
                unit="s",
                fill=0,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Responses by status class",
                "Replayed responses per second by class (error = no response). Good: 2xx and "
                "the 4xx the capture also had.",
                targets((sum_rate(_REQUESTS, mr, "status_class"), "{{status_class}}")),
                unit="reqps",
                stack=True,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Schedule lag P99",
                "How late the replayer sent requests against the capture's timing. Good: a few "
                "milliseconds; a large lag means the replayer, not the target, is the limit "
                "(add workers).",
                targets((quantile(0.99, "hlthz_replay_schedule_lag_seconds", m), "p99 lag")),
                unit="s",
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Skipped requests by reason",
                "Captured requests not sent (writes without --allow-writes, filtered...). Good: "
                "no data, or only the reasons you expect.",
                targets(
                    (sum_rate("hlthz_replay_skipped_total", m, "reason", "increase"), "{{reason}}")
                ),
                unit="short",
            ),
            8,
            8,
        ),
        (
            table(
                title="Routes by P95 latency",
                description=f"Replayed routes ranked by P95 latency, with their error share. "
                f"Good: every P95 under {warn:g} s and no errors.",
                queries=[
                    query(
                        f"topk(20, {quantile(0.95, _LATENCY, m, 'route')})",
                        ref="A",
                        instant=True,
                        fmt="table",
                    ),
                    query(
                        share(_REQUESTS, m, _FAILED, "route"), ref="B", instant=True, fmt="table"
                    ),
                ],
                transformations=[
                    {"id": "joinByField", "options": {"byField": "route", "mode": "outer"}},
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True, "Time 1": True, "Time 2": True},
                            "renameByName": {"Value #A": "P95", "Value #B": "Error share"},
                        },
                    },
                ],
                sort_by="P95",
                overrides=[
                    column("P95", unit="s", thresholds=latency_steps(s), colored=True),
                    column(
                        "Error share",
                        unit="percentunit",
                        thresholds=error_steps(s),
                        colored=True,
                    ),
                ],
            ),
            24,
            8,
        ),
    ]

    # Replay metrics are not behind the API selector: the replayer is a job of its own.
    variables = [
        datasource_variable(),
        query_variable("job", "Job", _REQUESTS, "job"),
        query_variable("instance", "Instance", _REQUESTS, "instance", depends='job=~"$job"'),
        query_variable("run", "Replay run", _REQUESTS, "run", depends=run_filter),
        query_variable("route", "Route", _REQUESTS, "route", depends=f'{run_filter}, run=~"$run"'),
    ]
    return dashboard(
        uid=UID,
        title="HLTHZ / Release validation",
        description="A release candidate under replayed production traffic: latency from the "
        "scheduled send time, errors and per-route regressions.",
        panels=layout([("Replay run", summary), ("Detail", detail)]),
        variables=variables,
        settings=s,
        alerts=ALERTS,
    )
