"""The replay's own ``/metrics`` while it runs, for the release-validation dashboard.

:class:`ReplayCollector` reads the run's :class:`~hlthz.replay.timing.Recorder` at scrape time,
so a request is recorded once (in HDR) and exposed from there, never observed twice. Prometheus
buckets are cumulative counts read off the HDR histograms at each bucket boundary.

Exposed (``run`` is the run's name):

- ``hlthz_replay_requests_total{run, route, status_class}``: ``2xx`` .. ``5xx`` or ``error``
- ``hlthz_replay_latency_seconds{run, route}``: from each request's scheduled time
- ``hlthz_replay_service_time_seconds{run, route}``: from its actual send
- ``hlthz_replay_schedule_lag_seconds{run}``, ``hlthz_replay_in_flight{run}``,
  ``hlthz_replay_skipped_total{run, reason}``
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from hdrh.histogram import HdrHistogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from hlthz.errors import PlanError
from hlthz.replay.timing import Recorder

#: Bucket boundaries in seconds (the exporter's request buckets, finer at the low end).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def status_class(status: str) -> str:
    """``"503"`` -> ``"5xx"``; a transport failure (``"error"``) stays ``"error"``."""
    return f"{status[0]}xx" if status.isdigit() and len(status) == 3 else "error"


def _buckets(hist: HdrHistogram, bounds: Iterable[float]) -> list[tuple[str, float]]:
    # Cumulative counts at each boundary: walk the recorded values once, in order. An HDR
    # bucket spans values equal within 0.1 %; it counts as "<= bound" when its lowest value
    # does, so a value exactly on a boundary lands in that boundary's bucket.
    values = [
        (hist.get_lowest_equivalent_value(item.value_iterated_to), item.count_at_value_iterated_to)
        for item in hist.get_recorded_iterator()
    ]
    out: list[tuple[str, float]] = []
    index = 0
    cumulative = 0
    for bound in bounds:
        limit_us = bound * 1e6
        while index < len(values) and values[index][0] <= limit_us:
            cumulative += values[index][1]
            index += 1
        out.append((repr(float(bound)), float(cumulative)))
    out.append(("+Inf", float(hist.get_total_count())))
    return out


def _sum_seconds(hist: HdrHistogram) -> float:
    return hist.get_mean_value() * hist.get_total_count() / 1e6


class ReplayCollector(Collector):
    """Prometheus collector over a live recorder. ``in_flight`` is read at scrape time."""

    def __init__(self, recorder: Recorder, run: str, in_flight: Callable[[], int]) -> None:
        self.recorder = recorder
        self.run = run
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        run, rec = self.run, self.recorder
        requests = CounterMetricFamily(
            "hlthz_replay_requests", "Replayed requests.", labels=["run", "route", "status_class"]
        )
        latency = HistogramMetricFamily(
            "hlthz_replay_latency_seconds",
            "Latency from each request's scheduled send time.",
            labels=["run", "route"],
        )
        service = HistogramMetricFamily(
            "hlthz_replay_service_time_seconds",
            "Latency from each request's actual send time.",
            labels=["run", "route"],
        )
        for route, stats in list(rec.routes.items()):
            classes: Counter[str] = Counter()
            for status, count in stats.statuses.items():
                classes[status_class(status)] += count
            for cls, count in sorted(classes.items()):
                requests.add_metric([run, route, cls], count)
            latency.add_metric(
                [run, route], _buckets(stats.latency, LATENCY_BUCKETS), _sum_seconds(stats.latency)
            )
            service.add_metric(
                [run, route], _buckets(stats.service, LATENCY_BUCKETS), _sum_seconds(stats.service)
            )
        lag = HistogramMetricFamily(
            "hlthz_replay_schedule_lag_seconds",
            "How late the generator sent each request.",
            labels=["run"],
        )
        lag.add_metric([run], _buckets(rec.lag, LAG_BUCKETS), _sum_seconds(rec.lag))
        in_flight = GaugeMetricFamily(
            "hlthz_replay_in_flight", "Requests sent and not yet answered.", labels=["run"]
        )
        in_flight.add_metric([run], self.in_flight())
        skipped = CounterMetricFamily(
            "hlthz_replay_skipped",
            "Captured requests not sent, by reason.",
            labels=["run", "reason"],
        )
        for reason in sorted(set(rec.skipped) | {"method"}):
            skipped.add_metric([run, reason], rec.skipped[reason])
        yield from (requests, latency, service, lag, in_flight, skipped)


def serve(port: int, recorder: Recorder, run: str, in_flight: Callable[[], int]) -> None:
    """Serve ``/metrics`` for this run on 127.0.0.1:``port`` (a daemon thread/greenlet)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplayCollector(recorder, run, in_flight))
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        raise PlanError(
            "metrics_port",
            f"{port}: cannot listen on 127.0.0.1 ({exc.strerror or exc}); choose a free port",
        ) from None
