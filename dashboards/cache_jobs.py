"""Dashboard 3, ``hlthz-cache-jobs``: cache hit share, background jobs, process memory and CPU."""

from __future__ import annotations

from grafanalib.core import Dashboard

from hlthz.dashboards.common import dashboard, matchers, standard_variables
from hlthz.dashboards.exprs import quantile, share, sum_rate
from hlthz.dashboards.panels import (
    GREEN,
    ORANGE,
    RED,
    ThresholdStep,
    layout,
    stat,
    steps,
    targets,
    timeseries,
)
from hlthz.dashboards.settings import DashboardSettings

UID = "hlthz-cache-jobs"
ALERTS = ("HighMemoryUsage", "LowCacheHitRate")
_CACHE = "cache_requests_total"


_TITLES = {
    ("cache", "jobs"): "Cache, jobs and process",
    ("cache",): "Cache and process",
    ("jobs",): "Jobs and process",
    (): "Process",
}


def _hit_steps(s: DashboardSettings) -> list[ThresholdStep]:
    return steps(RED, (s.cache_hit_rate, GREEN))


def _memory_steps(s: DashboardSettings) -> list[ThresholdStep]:
    return steps(GREEN, (s.memory, ORANGE), (1.0, RED))


def memory_share(m: str) -> str:
    """Resident memory of every process of an instance over the instance's memory limit."""
    return (
        f"sum by (job, instance) (process_resident_memory_bytes{{{m}}}) / "
        f"max by (job, instance) (process_memory_limit_bytes{{{m}}})"
    )


def build(s: DashboardSettings) -> Dashboard:
    """The cache, jobs and process dashboard for the thresholds in ``s``."""
    m = matchers(s)
    cache_runbook = [("Runbook: LowCacheHitRate", s.runbook("LowCacheHitRate"))]
    memory_runbook = [("Runbook: HighMemoryUsage", s.runbook("HighMemoryUsage"))]
    hit = f"{s.cache_hit_rate:.0%}"

    cache = [
        (
            stat(
                "Cache hit share",
                f"Share of cache look-ups that found a value, all caches together. Good: "
                f"above {hit}; LowCacheHitRate warns below it.",
                share(_CACHE, m, 'result="hit"'),
                unit="percentunit",
                decimals=1,
                thresholds=_hit_steps(s),
                links=cache_runbook,
            ),
            6,
            8,
        ),
        (
            timeseries(
                "Cache hit share by cache",
                f"Hit share per cache. Good: above the dashed {hit} line. A drop after a "
                "deploy often means changed keys or a shorter TTL.",
                targets((share(_CACHE, m, 'result="hit"', "cache"), "{{cache}}")),
                unit="percentunit",
                thresholds=_hit_steps(s),
                max_value=1,
                links=cache_runbook,
            ),
            9,
            8,
        ),
        (
            timeseries(
                "Cache look-ups and errors",
                "Look-ups per second by result, and backend errors (the request is still "
                "served, from the database). Good: errors at 0 or no data.",
                targets(
                    (sum_rate(_CACHE, m, "cache, result"), "{{cache}} {{result}}"),
                    (sum_rate("cache_errors_total", m, "cache"), "{{cache}} errors"),
                ),
                unit="ops",
            ),
            9,
            8,
        ),
    ]

    jobs = [
        (
            timeseries(
                "Queue depth",
                "Jobs waiting per queue. Good: near 0 and draining; steady growth means the "
                "workers cannot keep up.",
                targets((f"sum by (queue) (job_queue_depth{{{m}}})", "{{queue}}")),
                unit="short",
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Job duration P95",
                "95th percentile duration of one background job, per queue and job. Good: "
                "stable; a job slower than the enqueue interval builds a backlog.",
                targets(
                    (quantile(0.95, "job_duration_seconds", m, "queue, job"), "{{queue}} {{job}}")
                ),
                unit="s",
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Job outcomes",
                "Finished jobs per second by outcome. Good: success only; failure and retry "
                "appear in the next panel.",
                targets((sum_rate("jobs_total", m, "queue, outcome"), "{{queue}} {{outcome}}")),
                unit="ops",
                stack=True,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Job failures and retries",
                "Jobs that failed or were retried, per queue and job. Good: no data or 0.",
                targets(
                    (
                        sum_rate(
                            "jobs_total", f'{m}, outcome=~"failure|retry"', "queue, job, outcome"
                        ),
                        "{{queue}} {{job}} {{outcome}}",
                    )
                ),
                unit="ops",
                thresholds=steps(GREEN, (0.001, RED)),
            ),
            24,
            7,
        ),
    ]

    process = [
        (
            timeseries(
                "Memory share of limit",
                f"Resident memory over the memory the process may use (cgroup limit, else "
                f"the machine's memory). Good: flat and below {s.memory:.0%}; HighMemoryUsage "
                "warns above it, at 100 % the kernel kills the process.",
                targets((memory_share(m), "{{job}} {{instance}}")),
                unit="percentunit",
                thresholds=_memory_steps(s),
                max_value=1,
                links=memory_runbook,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Resident memory",
                "Resident set size per instance. Good: flat after warm-up; a steady climb "
                "under steady traffic is a leak.",
                targets(
                    (
                        f"sum by (job, instance) (process_resident_memory_bytes{{{m}}})",
                        "{{job}} {{instance}}",
                    )
                ),
                unit="bytes",
            ),
            8,
            8,
        ),
        (
            timeseries(
                "CPU",
                "CPU time per second per instance (100 % = one core). Good: well below the "
                "cores the instance has; pegged CPU turns into queueing latency.",
                targets(
                    (
                        sum_rate("process_cpu_seconds_total", m, "job, instance"),
                        "{{job}} {{instance}}",
                    )
                ),
                unit="percentunit",
            ),
            8,
            8,
        ),
    ]

    sections = []
    if "cache" in s.signals:
        sections.append(("Cache", cache))
    if "jobs" in s.signals:
        sections.append(("Background jobs", jobs))
    sections.append(("Process", process))
    title = _TITLES[tuple(sig for sig in ("cache", "jobs") if sig in s.signals)]
    return dashboard(
        uid=s.uid(UID),
        title=s.title(f"HLTHZ / {title}"),
        description="Cache hit share, background job queues and outcomes, and the memory and "
        "CPU of every instrumented process.",
        panels=layout(sections),
        variables=standard_variables(s, "process_memory_limit_bytes"),
        settings=s,
        alerts=ALERTS,
    )
