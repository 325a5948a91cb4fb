"""Source 2: Prometheus, over the last ``window`` (``increase`` and ``max_over_time``).

One instant query per sample name (a few dozen, each cheap): counters and histogram parts as
``sum by (labels) (increase(name{job=~"J"}[window]))``, gauges as
``max by (labels) (max_over_time(name{...}[window]))``. The PromQL is in docs/diagnose.md.
The HTTP client is the dashboards checker's (``hlthz.dashboards.live.PrometheusClient``).
"""

from __future__ import annotations

from hlthz.alerts import format_duration
from hlthz.errors import PrometheusError, QueryError
from hlthz.net import parse_http_url
from hlthz.prometheus import PrometheusClient
from hlthz.tools.diagnose.snapshot import COUNTER_SAMPLES, GAUGE_SAMPLES, Samples


def selector(job: str | None) -> str:
    """The label matchers of every query (``{job="J"}``, or none)."""
    if not job:
        return ""
    escaped = job.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{job="{escaped}"}}'


def counter_query(name: str, job: str | None, window: float) -> str:
    """PromQL for one counter (or histogram part) sample over the window."""
    by = ", ".join(COUNTER_SAMPLES[name])
    return f"sum by ({by}) (increase({name}{selector(job)}[{format_duration(window)}]))"


def gauge_query(name: str, job: str | None, window: float) -> str:
    """PromQL for one gauge's highest value over the window."""
    by = ", ".join(GAUGE_SAMPLES[name])
    return f"max by ({by}) (max_over_time({name}{selector(job)}[{format_duration(window)}]))"


def prometheus_samples(
    url: str, *, job: str | None = None, window: float = 900.0, timeout: float = 10.0
) -> Samples:
    """The window's :class:`Samples` from the Prometheus at ``url``."""
    parse_http_url(url, what="--prometheus")
    client = PrometheusClient(url, timeout=timeout)
    source = f"prometheus {url}" + (f" job={job}" if job else "")
    samples = Samples(window_seconds=window, source=source)
    for name in COUNTER_SAMPLES:
        for row in _query(client, counter_query(name, job, window)):
            samples.add_counter(name, row[0], row[1])
    for name in GAUGE_SAMPLES:
        for row in _query(client, gauge_query(name, job, window)):
            samples.add_gauge(name, row[0], row[1])
    return samples


def _query(client: PrometheusClient, expr: str) -> list[tuple[dict[str, str], float]]:
    try:
        result = client.query(expr)
    except QueryError as exc:
        raise PrometheusError(f"Prometheus at {client.base_url} rejected {expr!r}: {exc}") from None
    rows = []
    for series in result:
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value != value:  # NaN: no data in the window
            continue
        rows.append(({str(k): str(v) for k, v in series.get("metric", {}).items()}, value))
    return rows
