"""Dashboard 2, ``hlthz-database``: query latency, queries per request, N+1, the pool (USE)."""

from __future__ import annotations

from grafanalib.core import Dashboard

from hlthz.dashboards.common import dashboard, matchers, standard_variables
from hlthz.dashboards.exprs import quantile, sum_rate
from hlthz.dashboards.panels import GREEN, ORANGE, RED, layout, steps, targets, timeseries
from hlthz.dashboards.settings import DashboardSettings

UID = "hlthz-database"
ALERTS = ("DBPoolExhausted",)
_QUERY = "database_query_duration_seconds"
_PER_REQUEST = "http_request_database_queries"


def wanted(s: DashboardSettings) -> bool:
    """Whether the app emits anything this dashboard shows (a database or a pool)."""
    return bool({"database", "pool"} & set(s.signals))


def build(s: DashboardSettings) -> Dashboard:
    """The database dashboard (no config threshold: the pool alert has only a duration), with
    the rows of the signals the app has."""
    m = matchers(s)
    mr = matchers(s, route=True)
    pool_runbook = [("Runbook: DBPoolExhausted", s.runbook("DBPoolExhausted"))]

    queries = [
        (
            timeseries(
                "Query P95 by query type",
                "95th percentile duration of one database query, per query type (an explicit "
                "name, else verb and main table). Good: single-digit milliseconds for indexed "
                "look-ups; a type that is slow on its own needs an index or a smaller result.",
                targets((quantile(0.95, _QUERY, m, "query_type"), "{{query_type}}")),
                unit="s",
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Query rate by query type",
                "Queries per second per query type. Good: roughly proportional to requests; "
                "a type growing faster than traffic is usually an N+1 loop.",
                targets((sum_rate(f"{_QUERY}_count", m, "query_type"), "{{query_type}}")),
                unit="ops",
                stack=True,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Queries per request by route",
                "Average number of database queries one request issues, per route. Good: a "
                "small constant (1-3); a number that grows with page size is an N+1 pattern.",
                targets(
                    (
                        f"{sum_rate(f'{_PER_REQUEST}_sum', mr, 'route')} / "
                        f"{sum_rate(f'{_PER_REQUEST}_count', mr, 'route')}",
                        "{{route}}",
                    )
                ),
                unit="short",
            ),
            12,
            8,
        ),
        (
            timeseries(
                "N+1 detections",
                "Requests in which one query shape repeated at least N times (the exporter's "
                "n_plus_one_threshold), per route and query type. Good: no data or 0 -- the "
                "series only exists once a route has done it. Fix with a join or a batched IN.",
                targets(
                    (
                        sum_rate("database_n_plus_one_total", m, "route, query_type", "increase"),
                        "{{route}} {{query_type}}",
                    )
                ),
                unit="short",
            ),
            12,
            8,
        ),
    ]

    pool = [
        (
            timeseries(
                "Pool connections in use / max",
                "Utilisation: connections checked out against the pool's capacity (size + "
                "overflow). Good: in use well below max; in use = max for a minute fires "
                "DBPoolExhausted.",
                targets(
                    (f"sum by (pool) (db_pool_connections_in_use{{{m}}})", "in use {{pool}}"),
                    (f"sum by (pool) (db_pool_connections_max{{{m}}})", "max {{pool}}"),
                ),
                unit="short",
                links=pool_runbook,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Pool utilisation",
                "Share of the pool's connections in use. Good: under 80 %; at 100 % new "
                "requests wait for a connection and latency climbs.",
                targets(
                    (
                        f"sum by (pool) (db_pool_connections_in_use{{{m}}}) / "
                        f"sum by (pool) (db_pool_connections_max{{{m}}})",
                        "{{pool}}",
                    )
                ),
                unit="percentunit",
                thresholds=steps(GREEN, (0.8, ORANGE), (1.0, RED)),
                max_value=1,
                links=pool_runbook,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Pending acquires",
                "Saturation: callers waiting for a connection. Good: 0; any sustained value "
                "means the pool is too small or connections are held too long.",
                targets((f"sum by (pool) (db_pool_pending_acquires{{{m}}})", "{{pool}}")),
                unit="short",
                thresholds=steps(GREEN, (1.0, RED)),
                links=pool_runbook,
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Pool acquire timeouts",
                "Errors: acquisitions that gave up waiting for a connection. Good: no data or "
                "0 -- each one is a failed request.",
                targets(
                    (
                        sum_rate("db_pool_acquire_timeouts_total", m, "pool", "increase"),
                        "{{pool}}",
                    )
                ),
                unit="short",
                thresholds=steps(GREEN, (1.0, RED)),
                links=pool_runbook,
            ),
            12,
            8,
        ),
    ]

    sections = []
    if "database" in s.signals:
        sections.append(("Queries", queries))
    if "pool" in s.signals:
        sections.append(("Connection pool (USE)", pool))
    anchor = f"{_QUERY}_count" if "database" in s.signals else "db_pool_connections_max"
    return dashboard(
        uid=s.uid(UID),
        title=s.title("HLTHZ / Database"),
        description="Query latency, queries per request and N+1 detections, and the "
        "connection pool as utilisation, saturation and errors.",
        panels=layout(sections),
        variables=standard_variables(s, anchor, route="database" in s.signals),
        settings=s,
        alerts=ALERTS,
    )
